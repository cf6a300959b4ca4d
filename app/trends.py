"""Trends of analysis variables over runs, as state: the choice (analysis, version, variables, x
axis, filters) and the points that follow from it, kept up to date by reading only what is new.

A ``param`` class without widgets, usable and testable without Panel or Bokeh (neither is
imported); :class:`app.trendsview.TrendsView` is its view. The points of each variable are a
DataFrame of :data:`SERIES_COLUMNS` (arrays, never one object per point), so that a trend of
10,000 runs is read and drawn in a fraction of a second.

A periodic :meth:`TrendsState.refresh` reads the points after the last run drawn (and that run
again: a live analysis replaces its result as the run's files are merged) and publishes them in
:attr:`TrendsState.update` for the view to stream into its plots; the whole trend is read again
only when the choice changes or an older result was stored, replaced or deleted (a backfill).

Example (in a notebook)::

    trends = TrendsState(source=Source(url), analysis="energy_scale", variables=["peak_mev"])
    trends.series["peak_mev"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import param

from app.source import AnalysisVersion, Source
from app.state import parse_run_id
from dqm.errors import DQMError, InvalidValueError
from dqm.runs import check_tags
from dqm.times import utcnow

__all__ = [
    "SERIES_COLUMNS",
    "URL_PARAMETERS",
    "X_AXES",
    "TrendUpdate",
    "TrendsState",
    "parse_trend_arguments",
]

#: The x axes of a trend: the run number, the runs evenly spaced (by rank), the run start time.
X_AXES = {"run number": "run", "runs evenly spaced": "rank", "start time": "time"}

#: Columns of a variable's points: ``run_id``; ``rank``, the run's place among the runs of the
#: trend (all its variables), for evenly spaced runs; ``time``, the run's start (UTC);
#: ``value``, ``error`` (NaN: none given), ``lower`` and ``upper`` (value ∓ error); ``outside``,
#: 1 where the value is outside the declared expected band (else 0).
SERIES_COLUMNS = ["run_id", "rank", "time", "value", "error", "lower", "upper", "outside"]

#: The URL parameters of a trend, as :meth:`TrendsState.arguments` writes them.
URL_PARAMETERS = (
    "analysis",
    "version",
    "variables",
    "x",
    "run_types",
    "min_run",
    "max_run",
    "days",
    "tags",
    "exclude_tags",
)

#: The parameters of the state that make the choice (a change reads the trend again).
CHOICE = (
    "analysis",
    "version",
    "variables",
    "run_types",
    "min_run",
    "max_run",
    "days",
    "include_tags",
    "exclude_tags",
)


@dataclass(frozen=True, eq=False)
class TrendUpdate:
    """New points of a trend already shown.

    Attributes:
        appended: variable → its points on runs after those shown (:data:`SERIES_COLUMNS`).
        replaced: variable → its last point shown, read again with a new value (one row, whose
            index is the point's position in the variable's series).
    """

    appended: dict[str, pd.DataFrame] = field(default_factory=dict)
    replaced: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.appended or self.replaced)


def _words(text: str) -> list[str]:
    """A comma-separated URL parameter as its non-empty items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_trend_arguments(arguments: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The choice of a trend from URL parameters (:data:`URL_PARAMETERS`), as parameters of
    :class:`TrendsState` (every choice parameter, its default where not given or not valid), and
    one sentence for each parameter that was not valid."""
    settings: dict[str, Any] = {
        "analysis": arguments.get("analysis", "").strip()[:64],
        "version": None,
        "variables": _words(arguments.get("variables", ""))[:20],
        "x_axis": "run",
        "run_types": _words(arguments.get("run_types", "")),
        "min_run": None,
        "max_run": None,
        "days": None,
        "include_tags": [],
        "exclude_tags": [],
    }
    problems = []
    version = arguments.get("version", "").strip()
    if version:
        if version.isdigit():
            settings["version"] = int(version)
        else:
            problems.append(f"'{version[:20]}' is not a version: versions are whole numbers.")
    x = arguments.get("x", "").strip()
    if x:
        if x in X_AXES.values():
            settings["x_axis"] = x
        else:
            problems.append(
                f"There is no x axis '{x[:20]}'; it is run (the run number), rank (runs evenly "
                "spaced) or time (the run start time)."
            )
    for name in ("min_run", "max_run"):
        run_id, problem = parse_run_id(arguments.get(name))
        if problem:
            problems.append(f"{name}: {problem}")
        settings[name] = run_id
    days = arguments.get("days", "").strip()
    if days:
        try:
            settings["days"] = float(days)
            if not 0 < settings["days"] <= 36_500:
                raise ValueError
        except ValueError:
            settings["days"] = None
            problems.append(f"'{days[:20]}' is not a number of days (more than 0).")
    for name, key in (("include_tags", "tags"), ("exclude_tags", "exclude_tags")):
        try:
            settings[name] = check_tags(_words(arguments.get(key, "")))
        except InvalidValueError as exc:
            problems.append(f"{key}: {exc}")
    return settings, problems


class TrendsState(param.Parameterized):
    """The trends of one or more variables of a version of an analysis over runs.

    Inputs: the choice (:attr:`analysis`, :attr:`version`, :attr:`variables`, the filters) and
    :attr:`x_axis`. Outputs: :attr:`catalog` (what can be chosen), :attr:`chosen` (the version
    shown), :attr:`series` (each variable's points), :attr:`update` (the points of the last
    refresh) and :attr:`message` (why nothing is shown, or what was wrong). A change of the choice
    reads the trend again; :meth:`refresh` reads only what is new.
    """

    source = param.ClassSelector(class_=Source, doc="Where the results are read from.")
    analysis = param.String(default="", doc="The analysis (empty: the first with results).")
    version = param.Integer(
        default=None, allow_None=True, doc="Its version (None: the highest with results)."
    )
    variables = param.List(
        default=[], item_type=str, doc="The variables shown, one plot each (empty: the first)."
    )
    x_axis: param.Selector[str] = param.Selector(
        objects=X_AXES, default="run", doc="The x axis: run number, runs evenly spaced, time."
    )
    run_types = param.List(
        default=[], item_type=str, doc="Only runs of these types (all if empty)."
    )
    min_run = param.Integer(default=None, allow_None=True, doc="Only runs from this one on.")
    max_run = param.Integer(default=None, allow_None=True, doc="Only runs up to this one.")
    days = param.Number(
        default=None,
        allow_None=True,
        bounds=(0, None),
        inclusive_bounds=(False, True),
        doc="Only runs started in the last so many days (all if None).",
    )
    include_tags = param.List(default=[], item_type=str, doc="Only runs with all these tags.")
    exclude_tags = param.List(default=[], item_type=str, doc="No run with any of these tags.")

    catalog = param.List(default=[], doc="The versions of analyses that can be followed.")
    run_type_choices = param.List(default=[], doc="The run types in the database.")
    tag_choices = param.List(default=[], doc="The run tags in use.")
    chosen = param.ClassSelector(
        class_=AnalysisVersion, allow_None=True, doc="The version shown, with its variables."
    )
    series = param.Dict(default={}, doc="Variable → its points (SERIES_COLUMNS), by run.")
    update = param.ClassSelector(
        class_=TrendUpdate, allow_None=True, doc="The points that the last refresh added."
    )
    message = param.String(default="", doc="Why nothing is shown, or what was wrong.")

    def __init__(self, **params: Any) -> None:
        # What the points shown were read with: the query, the last run, the results before it.
        self._query: dict[str, Any] | None = None
        self._last_run: int | None = None
        self._token: tuple[object, ...] | None = None
        self._runs = np.zeros(0, np.int64)  # the runs of the trend, sorted
        super().__init__(**params)

    @property
    def _source(self) -> Source:
        """:attr:`source`, which the app always gives (param types the parameter as optional)."""
        assert self.source is not None, "TrendsState is read from a Source"
        return self.source

    @property
    def n_runs(self) -> int:
        """The runs of the trend (with a value of any of its variables)."""
        return len(self._runs)

    # --- the URL ------------------------------------------------------------------------------

    def arguments(self) -> dict[str, str]:
        """The choice as URL parameters (:data:`URL_PARAMETERS`), those not at their default."""
        values = {
            "analysis": self.analysis,
            "version": "" if self.version is None else str(self.version),
            "variables": ",".join(self.variables),
            "x": "" if self.x_axis == "run" else self.x_axis,
            "run_types": ",".join(self.run_types),
            "min_run": "" if self.min_run is None else str(self.min_run),
            "max_run": "" if self.max_run is None else str(self.max_run),
            "days": "" if self.days is None else f"{self.days:g}",
            "tags": ",".join(self.include_tags),
            "exclude_tags": ",".join(self.exclude_tags),
        }
        return {name: value for name, value in values.items() if value}

    def apply_arguments(self, arguments: Mapping[str, str]) -> list[str]:
        """Make the choice that URL parameters say (what they do not say at its default); one
        sentence for each parameter that was not valid."""
        settings, problems = parse_trend_arguments(arguments)
        changed = {k: v for k, v in settings.items() if getattr(self, k) != v}
        if changed:
            self.param.update(**changed)
        return problems

    # --- reading ------------------------------------------------------------------------------

    @param.depends(*CHOICE, watch=True, on_init=True)
    def load(self) -> None:
        """Read the choices and the whole trend again (a change of the choice)."""
        self._read_choices()
        if self._complete_choice():
            return  # the completed choice has read the trend
        query, problem = self._resolve()
        if query is None:
            self._show_nothing(problem)
            return
        try:
            frame = self._source.trend(**query)
        except DQMError as exc:
            self._show_nothing(str(exc))
            return
        self._query = query
        self._runs = np.unique(frame["run_id"].to_numpy())
        self._last_run = int(self._runs[-1]) if len(self._runs) else None
        self._token = self._head_token()
        self._show({v: self._points(frame, v, self._runs) for v in query["variables"]})
        self.message = self._emptiness() or problem
        self.update = None

    def refresh(self) -> None:
        """Read what is new (periodic): the choices, and the points after the last run shown and
        that run again, published in :attr:`update`; the whole trend again if a result before it
        changed."""
        self._read_choices()
        if self._query is None or self._last_run is None:
            self.load()
            return
        if self._head_token() != self._token:  # a result before the last run shown changed
            self.load()
            return
        tail = self._source.trend(**self._query, after_run=self._last_run - 1)
        new_runs = np.unique(tail["run_id"].to_numpy())
        new_runs = new_runs[new_runs > self._last_run]
        runs = np.concatenate([self._runs, new_runs])
        update = TrendUpdate()
        for variable, shown in self.series.items():
            points = self._points(tail, variable, runs)
            last = int(shown["run_id"].iat[-1]) if len(shown) else None
            if last == self._last_run:
                again = points[points["run_id"] == last]
                if again.empty:  # the last run's value is gone: read everything again
                    self.load()
                    return
                compared = ["value", "error", "outside"]
                if not np.array_equal(
                    again[compared].to_numpy(float),
                    shown[compared].iloc[-1:].to_numpy(float),
                    equal_nan=True,
                ):
                    update.replaced[variable] = again.set_axis([len(shown) - 1])
            appended = points[points["run_id"] > (last if last is not None else -1)]
            if len(appended):
                update.appended[variable] = appended.reset_index(drop=True)
        if not update:
            return
        # The frames of :attr:`series` are replaced in the dict (the view streams the update).
        for variable, rows in update.replaced.items():
            shown = self.series[variable]
            self.series[variable] = pd.concat([shown.iloc[:-1], rows], ignore_index=True)
        for variable, rows in update.appended.items():
            shown = self.series[variable]
            self.series[variable] = (
                pd.concat([shown, rows], ignore_index=True) if len(shown) else rows
            )
        self._runs = runs
        self._last_run = int(runs[-1])
        self._token = self._head_token()
        self.message = self._emptiness()
        self.update = update

    # --- helpers ------------------------------------------------------------------------------

    def _read_choices(self) -> None:
        """The catalogue, run types and tags (each set only when it changed)."""
        catalog = self._source.analysis_catalog()
        if [(c.analysis, c.version, c.variables) for c in catalog] != [
            (c.analysis, c.version, c.variables) for c in self.catalog
        ]:
            self.catalog = catalog
        for name, values in (
            ("run_type_choices", self._source.run_types()),
            ("tag_choices", self._source.all_tags()),
        ):
            if values != getattr(self, name):
                setattr(self, name, values)

    def _versions(self, analysis: str) -> list[AnalysisVersion]:
        return [c for c in self.catalog if c.analysis == analysis]

    def _complete_choice(self) -> bool:
        """Fill in what the choice leaves to its default (the first analysis with results, its
        highest version, its first variable); whether anything was filled in."""
        completed: dict[str, Any] = {}
        analysis = self.analysis
        if not analysis:
            with_results = [c for c in self.catalog if c.n_results] or self.catalog
            if not with_results:
                return False
            analysis = completed["analysis"] = with_results[0].analysis
        versions = self._versions(analysis)
        if self.version is None and versions:
            best = max(versions, key=lambda c: (c.n_results > 0, c.version))
            completed["version"] = best.version
        version = completed.get("version", self.version)
        chosen = next((c for c in versions if c.version == version), None)
        if not self.variables and chosen is not None and chosen.variables:
            completed["variables"] = [chosen.variables[0].name]
        if completed:
            self.param.update(**completed)
        return bool(completed)

    def _resolve(self) -> tuple[dict[str, Any] | None, str]:
        """The query of the choice, and one sentence about what in it is not valid (a query
        without its unknown variables; None when nothing can be shown). Sets :attr:`chosen`."""
        query, problem, chosen = self._query_of_choice()
        if chosen != self.chosen:
            self.chosen = chosen
        return query, problem

    def _query_of_choice(self) -> tuple[dict[str, Any] | None, str, AnalysisVersion | None]:
        if not self.catalog:
            return None, "No analysis has been declared or has results yet.", None
        versions = self._versions(self.analysis)
        if not versions:
            names = sorted({c.analysis for c in self.catalog})
            return (
                None,
                f"There is no analysis '{self.analysis[:64]}'; the analyses are {', '.join(names)}.",
                None,
            )
        chosen = next((c for c in versions if c.version == self.version), None)
        if chosen is None:
            known = ", ".join(str(c.version) for c in versions)
            return (
                None,
                f"{self.analysis} has no version {self.version}; its versions are {known}.",
                None,
            )
        names = [v.name for v in chosen.variables]
        unknown = [v for v in self.variables if v not in names]
        variables = [v for v in self.variables if v in names]
        problem = (
            f"{chosen.label} has no variable '{unknown[0][:64]}'; its variables are "
            f"{', '.join(names) or 'none'}."
            if unknown
            else ""
        )
        if not variables:
            return None, problem or f"Choose a variable of {chosen.label}.", chosen
        if self.min_run is not None and self.max_run is not None and self.min_run > self.max_run:
            return (
                None,
                (
                    f"No run can be shown: the first run ({self.min_run}) is after the last "
                    f"({self.max_run})."
                ),
                chosen,
            )
        try:
            include, exclude = check_tags(self.include_tags), check_tags(self.exclude_tags)
        except InvalidValueError as exc:
            return None, str(exc), chosen
        query = {
            "analysis": chosen.analysis,
            "version": chosen.version,
            "variables": variables,
            "run_types": list(self.run_types),
            "min_run": self.min_run,
            "max_run": self.max_run,
            "since": None if self.days is None else utcnow() - dt.timedelta(days=self.days),
            "include_tags": include,
            "exclude_tags": exclude,
        }
        return query, problem, chosen

    def _show_nothing(self, message: str) -> None:
        self._query, self._last_run, self._token = None, None, None
        self._runs = np.zeros(0, np.int64)
        self._show({})
        self.update = None
        self.message = message

    def _show(self, series: dict[str, pd.DataFrame]) -> None:
        """Set :attr:`series`, unless it holds the same points already (a refresh of a trend
        without points, or of a choice that shows nothing, sends nothing to the page)."""
        if list(series) != list(self.series) or not all(
            points.equals(self.series[variable]) for variable, points in series.items()
        ):
            self.series = series

    def _emptiness(self) -> str:
        if self._last_run is not None:
            return ""
        assert self.chosen is not None
        if self.chosen.n_results == 0:
            return f"{self.chosen.label} has no results yet: they appear as runs are analysed."
        return "No run with a result matches these filters."

    def _head_token(self) -> tuple[object, ...] | None:
        if self._query is None or self._last_run is None:
            return None
        return self._source.trend_token(
            self._query["analysis"], self._query["version"], before_run=self._last_run
        )

    def _points(self, frame: pd.DataFrame, variable: str, runs: np.ndarray) -> pd.DataFrame:
        """A variable's points (:data:`SERIES_COLUMNS`) from the rows read, ranked among
        ``runs`` (the runs of the trend, sorted)."""
        rows = frame[frame["variable"].to_numpy() == variable]
        run_id = rows["run_id"].to_numpy(np.int64)
        value = rows["value"].to_numpy(np.float64)
        error = rows["error"].to_numpy(np.float64)
        info = self.chosen.variable(variable) if self.chosen is not None else None
        band = info.expected if info is not None else None
        outside = (
            ((value < band[0]) | (value > band[1])).astype(np.int8)
            if band is not None
            else np.zeros(len(value), np.int8)
        )
        return pd.DataFrame(
            {
                "run_id": run_id,
                "rank": np.searchsorted(runs, run_id).astype(np.int64),
                "time": rows["start_time"].to_numpy("datetime64[us]"),
                "value": value,
                "error": error,
                "lower": value - error,
                "upper": value + error,
                "outside": outside,
            },
            columns=SERIES_COLUMNS,
        )
