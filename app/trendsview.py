"""The trends page: the choice of an analysis, its variables, the x axis and the filters, and one
plot per variable, stacked with their x axes linked.

:class:`TrendsView` is the view (a ``pn.viewable.Viewer``) of an :class:`app.trends.TrendsState`.
Each plot is a Bokeh figure over one ``ColumnDataSource`` of arrays (the points, their error bars
as segments, the declared expected band shaded behind them): 10,000 runs are one glyph each, not
10,000 objects. A new choice replaces the sources' data; a refresh streams the new points into
them (and patches a last point read again), so that the plots are never drawn from scratch and
keep their zoom; the x axis is switched by pointing the glyphs at another column.

Example (in a notebook)::

    TrendsView(state=TrendsState(source=Source(url), analysis="energy_scale"))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    CustomJSTickFormatter,
    DataRange1d,
    DatetimeTicker,
    DatetimeTickFormatter,
    HoverTool,
    LinearColorMapper,
    NumeralTickFormatter,
    TapTool,
)
from bokeh.models.annotations import BoxAnnotation  # bokeh.models: lazy exports
from bokeh.plotting import figure
from bokeh.transform import transform

from app.source import VariableInfo
from app.trends import CHOICE, SERIES_COLUMNS, TrendsState
from dqm.analyses.api import unit_suffix

__all__ = ["TrendsView"]

#: Colours of the points inside and outside the expected band, and of the band (Okabe-Ito).
INSIDE, OUTSIDE, BAND = "#0072B2", "#D55E00", "#009E73"

#: The column of the points that each x axis draws, and its label.
X_COLUMNS = {"run": "run_id", "rank": "rank", "time": "time"}
X_LABELS = {"run": "run", "rank": "runs, evenly spaced", "time": "run start (UTC)"}

#: In the evenly spaced mode, a tick at rank r shows the run of that rank.
RANK_TICKS = """
const ranks = source.data.rank, runs = source.data.run_id;
const i = ranks.indexOf(Math.round(tick));
return (Math.abs(tick - Math.round(tick)) < 1e-6 && i >= 0) ? String(runs[i]) : "";
"""


def _columns(points: pd.DataFrame) -> dict[str, Any]:
    """A variable's points as the arrays of its plot's source."""
    return {name: points[name].to_numpy() for name in SERIES_COLUMNS}


@dataclass
class _Plot:
    """The plot of one variable: its figure, source and the models a change touches."""

    variable: str
    figure: Any
    source: ColumnDataSource
    points: Any
    errors: Any
    band: BoxAnnotation
    hover: HoverTool
    pane: pn.pane.Bokeh


class TrendsView(pn.viewable.Viewer):
    """The trends page: choice, filters and one plot per variable; a click on a point opens its
    run. Works unchanged in a notebook and under ``panel serve``.

    The layout is built on the first call of ``__panel__`` and reused afterwards.
    """

    state = param.ClassSelector(class_=TrendsState, doc="The trend shown and its choice.")
    on_open = param.Callable(default=None, doc="Called with a run id when a point is clicked.")
    plot_height = param.Integer(default=260, bounds=(100, 2000), doc="Height of a plot (px).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._layout: pn.Column | None = None
        self._plots: list[_Plot] = []
        self._choice: tuple[Any, ...] | None = None
        self._updating = False

    @property
    def _state(self) -> TrendsState:
        """:attr:`state`, which the caller always gives (param types the parameter as optional)."""
        assert self.state is not None, "TrendsView shows a TrendsState"
        return self.state

    @property
    def plots(self) -> list[_Plot]:
        """The plots shown, one per variable (built on first use)."""
        self.__panel__()
        return self._plots

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> pn.Column:
        state = self._state
        self._analysis = pn.widgets.Select(label="Analysis", width=220)
        self._variables = pn.widgets.MultiChoice(label="Variables", width=360)
        self._run_types = pn.widgets.MultiChoice(label="Run types", width=220)
        self._include = pn.widgets.MultiChoice(label="With tags", width=200)
        self._exclude = pn.widgets.MultiChoice(label="Without tags", width=200)
        self._update_choices()
        self._analysis.param.watch(self._analysis_chosen, "value")
        for widget, name in (
            (self._variables, "variables"),
            (self._run_types, "run_types"),
            (self._include, "include_tags"),
            (self._exclude, "exclude_tags"),
        ):
            widget.param.watch(functools.partial(self._widget_changed, name), "value")
        state.param.watch(
            lambda *_: self._update_choices(),
            [
                "catalog",
                "chosen",
                "analysis",
                "version",
                "variables",
                "run_types",
                "include_tags",
                "exclude_tags",
                "run_type_choices",
                "tag_choices",
            ],
        )
        state.param.watch(lambda *_: self._redraw(), ["series"])
        state.param.watch(lambda event: self._stream(event.new), ["update"])
        state.param.watch(lambda *_: self._switch_x(), ["x_axis"])
        self._column = pn.Column(sizing_mode="stretch_width")
        self._summary = pn.pane.Markdown("", margin=(0, 10))
        self._redraw()
        choice = pn.FlexBox(
            self._analysis,
            self._variables,
            pn.Column(
                pn.widgets.StaticText(value="x axis", margin=(5, 10, 0, 10)),
                pn.widgets.RadioButtonGroup.from_param(
                    state.param.x_axis, color="primary", width=380
                ),
                width=400,
            ),
        )
        filters = pn.FlexBox(
            self._run_types,
            pn.widgets.IntInput.from_param(state.param.min_run, label="First run", width=110),
            pn.widgets.IntInput.from_param(state.param.max_run, label="Last run", width=110),
            pn.widgets.FloatInput.from_param(
                state.param.days, label="Last days", width=100, start=0.0
            ),
            self._include,
            self._exclude,
        )
        message = pn.pane.Alert(
            pn.bind(str, state.param.message),
            alert_type="warning",
            visible=pn.bind(bool, state.param.message),
        )
        return pn.Column(
            choice, filters, message, self._summary, self._column, sizing_mode="stretch_width"
        )

    def _update_choices(self) -> None:
        """The widgets' options and values from the state (set only where they differ)."""
        state = self._state
        labels = {c.label: c.label for c in state.catalog}
        chosen = state.chosen.label if state.chosen is not None else None
        names = [v.name for v in state.chosen.variables] if state.chosen is not None else []
        wanted: list[tuple[Any, dict[str, Any]]] = [
            (self._analysis, {"options": labels, "value": chosen}),
            (
                self._variables,
                {"options": names, "value": [v for v in state.variables if v in names]},
            ),
            (
                self._run_types,
                {"options": list(state.run_type_choices), "value": list(state.run_types)},
            ),
            (
                self._include,
                {"options": list(state.tag_choices), "value": list(state.include_tags)},
            ),
            (
                self._exclude,
                {"options": list(state.tag_choices), "value": list(state.exclude_tags)},
            ),
        ]
        self._updating = True  # these changes come from the state: not sent back to it
        try:
            self._set_widgets(wanted)
        finally:
            self._updating = False

    def _widget_changed(self, name: str, event: Any) -> None:
        if not self._updating:
            setattr(self._state, name, list(event.new))

    @staticmethod
    def _set_widgets(wanted: list[tuple[Any, dict[str, Any]]]) -> None:
        for widget, values in wanted:
            # the options hold the values: a value not (yet) among them is added
            options = values["options"]
            value = values["value"]
            if isinstance(options, list) and isinstance(value, list):
                options = options + [v for v in value if v not in options]
            changed = {
                k: v for k, v in (("options", options), ("value", value)) if getattr(widget, k) != v
            }
            if changed:
                widget.param.update(**changed)

    def _analysis_chosen(self, event: Any) -> None:
        if self._updating:
            return
        chosen = next((c for c in self._state.catalog if c.label == event.new), None)
        state = self._state
        if chosen is not None and (chosen.analysis, chosen.version) != (
            state.analysis,
            state.version,
        ):
            state.param.update(analysis=chosen.analysis, version=chosen.version, variables=[])

    # --- plots --------------------------------------------------------------------------------

    def _redraw(self) -> None:
        """The whole trend (a new choice): the data of the plots shown replaced (a plot per
        variable, in order: another variable takes the place of the one before it), plots added
        or removed for a different number of variables; new ranges when the choice changed (not
        on a re-read of the same choice)."""
        state = self._state
        series = state.series
        choice = tuple(repr(getattr(state, name)) for name in CHOICE)
        new_ranges = choice != self._choice
        self._choice = choice
        shown = len(self._plots)
        x_range = self._plots[0].figure.x_range if self._plots else DataRange1d(range_padding=0.04)
        if new_ranges:
            x_range = DataRange1d(range_padding=0.04)
        plots = []
        for k, (variable, points) in enumerate(series.items()):
            if k >= shown:
                plots.append(self._plot(variable, points, x_range))
                continue
            plot = self._plots[k]
            plot.variable = variable
            plot.source.data = _columns(points)
            if new_ranges:
                plot.figure.x_range = x_range
                plot.figure.y_range = DataRange1d()
            self._describe(plot)
            plots.append(plot)
        if len(plots) != shown:
            self._column[:] = [p.pane for p in plots]
        self._plots = plots
        self._summarise()

    def _plot(self, variable: str, points: pd.DataFrame, x_range: DataRange1d) -> _Plot:
        source = ColumnDataSource(data=_columns(points))
        fig = figure(  # type: ignore[call-arg]
            height=self.plot_height,
            sizing_mode="stretch_width",
            x_range=x_range,
            tools="xpan,xwheel_zoom,box_zoom,reset,save",
            active_scroll="xwheel_zoom",
            toolbar_location="right",
        )
        band = BoxAnnotation(fill_color=BAND, fill_alpha=0.15, line_alpha=0, level="underlay")
        fig.add_layout(band)
        x = X_COLUMNS[self._state.x_axis]
        errors = fig.segment(
            x0=x, y0="lower", x1=x, y1="upper", source=source, line_color="#666666", line_width=1
        )
        colours = LinearColorMapper(palette=[INSIDE, OUTSIDE], low=0, high=1)
        points_renderer = fig.scatter(
            x=x,
            y="value",
            source=source,
            size=6,
            fill_color=transform("outside", colours),
            line_color=transform("outside", colours),
            nonselection_alpha=1.0,
        )
        hover = HoverTool(renderers=[points_renderer], formatters={"@time": "datetime"})
        fig.add_tools(hover, TapTool(renderers=[points_renderer]))
        source.selected.on_change("indices", self._tapped)
        pane = pn.pane.Bokeh(fig, sizing_mode="stretch_width")
        plot = _Plot(variable, fig, source, points_renderer, errors, band, hover, pane)
        self._describe(plot)
        self._axis(plot)
        return plot

    def _describe(self, plot: _Plot) -> None:
        """Title, y label, band and hover of a plot from its variable's declaration."""
        chosen = self._state.chosen
        info = (chosen.variable(plot.variable) if chosen is not None else None) or VariableInfo(
            plot.variable
        )
        unit = unit_suffix(info.unit)
        title = f"{plot.variable}: {info.meaning}" if info.meaning else plot.variable
        if info.expected is not None:
            low, high = info.expected
            title += f" (shaded: expected {low:g} to {high:g}{unit})"
            plot.band.update(bottom=low, top=high, visible=True)
        else:
            plot.band.visible = False
        plot.figure.title.text = title
        plot.figure.yaxis.axis_label = (
            f"{plot.variable} [{info.unit}]" if info.unit else plot.variable
        )
        plot.hover.tooltips = [
            ("run", "@run_id"),
            ("value", f"@value{{0.[0000]}} ± @error{{0.[0000]}}{unit}"),
            ("start", "@time{%F %T}"),
        ]

    def _axis(self, plot: _Plot) -> None:
        """Point a plot's glyphs and x axis at the column of the x axis chosen."""
        mode = self._state.x_axis
        column = X_COLUMNS[mode]
        plot.points.glyph.x = column
        plot.errors.glyph.update(x0=column, x1=column)
        (axis,) = plot.figure.xaxis
        if mode == "time":
            axis.update(ticker=DatetimeTicker(), formatter=DatetimeTickFormatter())
        elif mode == "rank":
            axis.update(
                ticker=BasicTicker(),
                formatter=CustomJSTickFormatter(args={"source": plot.source}, code=RANK_TICKS),
            )
        else:
            axis.update(ticker=BasicTicker(), formatter=NumeralTickFormatter(format="0"))
        axis.axis_label = X_LABELS[mode]

    def _switch_x(self) -> None:
        x_range = DataRange1d(range_padding=0.04)  # the old range is in the other axis's units
        for plot in self._plots:
            self._axis(plot)
            plot.figure.x_range = x_range

    def _stream(self, update: Any) -> None:
        """New points into the plots: the last one shown patched, the new ones streamed."""
        if update is None:
            return
        plots = {p.variable: p for p in self._plots}
        for variable, rows in update.replaced.items():
            if variable in plots:
                (index,) = rows.index
                plots[variable].source.patch(
                    {name: [(int(index), rows[name].to_numpy()[0])] for name in SERIES_COLUMNS}
                )
        for variable, rows in update.appended.items():
            if variable in plots:
                plots[variable].source.stream(_columns(rows))
        self._summarise()

    def _summarise(self) -> None:
        state = self._state
        n = state.n_runs
        last = max(
            (int(p["run_id"].iat[-1]) for p in state.series.values() if len(p)), default=None
        )
        self._summary.object = (
            f"{n:,} runs, the last {last}. Click a point to open its run."
            if last is not None
            else ""
        )

    def _tapped(self, _attr: str, _old: list[int], new: list[int]) -> None:
        if not new or self.on_open is None:
            return
        for plot in self._plots:
            if plot.source.selected.indices == new:
                run_id = int(np.asarray(plot.source.data["run_id"])[new[0]])
                plot.source.selected.indices = []
                self.on_open(run_id)
                return
