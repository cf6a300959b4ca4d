"""The PMT map: every large PMT of a run on an Aitoff projection, classified by cuts on its hit rate.

Two layers, as everywhere in the dashboard:

- :class:`PmtCuts` (state, ``param`` only): the cuts, one run's per-PMT hit rate and mean charge,
  and what follows from them: the class of every PMT, the counts of each class and the table of
  flagged (dead and hot) PMTs. Usable and testable without Panel.
- :class:`PmtMap` (view, a ``pn.viewable.Viewer``): sliders for the cuts, the counts, the map of the
  17,612 PMTs and the table of flagged PMTs with a CSV download. Moving a slider recolours the
  existing map in place; it never rebuilds it.

The hit rate is the fraction of a run's events in which the PMT fired (see :mod:`dqm.pmtstats`).
A PMT is

- **dead** when its hit rate is below the dead cut,
- **hot** when its hit rate is above the hot cut (and it is not dead),
- **normal** when its hit rate lies inside the normal band, ends included (and it is neither dead
  nor hot),
- **other** in every remaining case, which includes a PMT without statistics (hit rate NaN).

Loading a run's statistics from the database is not done here: the caller builds the state with
:meth:`PmtCuts.from_arrays` or updates an existing one with :meth:`PmtCuts.set_statistics`.

Example (in a notebook)::

    cuts = PmtCuts.from_arrays(hit_rate, mean_charge_pe, run_id=1234, dead_cut=0.02)
    PmtMap(cuts=cuts)
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import value
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSHover,
    HoverTool,
    Legend,
    LegendItem,
    LinearColorMapper,
    LogColorMapper,
    LogTicker,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.transform import transform

from dqm.detector import aitoff, load_pmts

__all__ = [
    "CLASS_COLOURS",
    "DEAD",
    "DEFAULT_DEAD_CUT",
    "DEFAULT_HOT_CUT",
    "DEFAULT_NORMAL_BAND",
    "FLAGGED_COLUMNS",
    "HOT",
    "NORMAL",
    "OTHER",
    "PMT_CLASSES",
    "PmtCuts",
    "PmtMap",
]

#: Default dead cut: a PMT that fired in less than this fraction of the events is dead.
DEFAULT_DEAD_CUT = 0.01
#: Default hot cut: a PMT that fired in more than this fraction of the events is hot.
DEFAULT_HOT_CUT = 0.99
#: Default normal band of the hit rate (fractions of the events, ends included).
DEFAULT_NORMAL_BAND = (0.05, 0.15)

#: The PMT classes; :attr:`PmtCuts.pmt_class` holds their index in this tuple.
PMT_CLASSES = ("dead", "hot", "normal", "other")
DEAD, HOT, NORMAL, OTHER = range(len(PMT_CLASSES))

#: Class colours (Okabe-Ito palette, distinguishable with the common colour-vision deficiencies).
CLASS_COLOURS = {
    "dead": "#000000",
    "hot": "#D55E00",
    "normal": "#009E73",
    "other": "#E69F00",
}

#: Columns of :meth:`PmtCuts.flagged` (and of the CSV download), in order.
FLAGGED_COLUMNS = ("pmt_id", "type", "theta_deg", "phi_deg", "hit_rate", "mean_charge_pe", "class")

#: Columns of the PMT table that the map needs.
_GEOMETRY_COLUMNS = {"pmt_id", "type", "theta_deg", "phi_deg", "aitoff_x", "aitoff_y"}

#: Hit-rate colour scale of the map (logarithmic): rates below the low end, a dead PMT's 0
#: included, are drawn in the dead colour.
_RATE_LOW, _RATE_HIGH = 1e-3, 1.0
_NO_DATA_COLOUR = "#BBBBBB"


def _per_pmt(values: np.ndarray | None, n_pmts: int, name: str) -> np.ndarray:
    """``values`` as float64 (NaN for a missing array), checked to hold one value per PMT."""
    if values is None:
        return np.full(n_pmts, np.nan)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n_pmts,):
        raise ValueError(
            f"{name} must hold one value per PMT ({n_pmts}), not an array of shape {values.shape}."
        )
    return values


def _number(value: float) -> str:
    return f"{value:.4g}"


class PmtCuts(param.Parameterized):
    """The dead/hot/normal cuts on the hit rate and the classes of one run's PMTs.

    Inputs are the three cuts (:attr:`dead_cut`, :attr:`hot_cut`, :attr:`normal_band`) and the data
    (:attr:`pmt_table`, :attr:`hit_rate`, :attr:`mean_charge_pe`, :attr:`run_id`); the outputs
    (:attr:`pmt_class`, the counts, :attr:`has_statistics`, :attr:`cut_warning`) are recomputed
    whenever a cut, the hit rates or the PMT table change, in a fraction of a millisecond for
    17,612 PMTs, and are set together in one batch (one event per change for a watcher of several).

    Cuts outside [0, 1] are refused (``ValueError``). Cuts that contradict each other (dead cut
    above the hot cut, a normal band reaching beyond them, a band whose ends are swapped) are kept
    as set, so that moving one slider never moves another; the classes stay well defined by the
    precedence dead, hot, normal, other, and :attr:`cut_warning` says in one sentence per problem
    what happens.

    The defaults of the cuts are :data:`DEFAULT_DEAD_CUT`, :data:`DEFAULT_HOT_CUT` and
    :data:`DEFAULT_NORMAL_BAND`; pass others to the constructor or to :meth:`from_arrays`.
    """

    dead_cut = param.Number(
        default=DEFAULT_DEAD_CUT,
        bounds=(0.0, 1.0),
        label="Dead: hit rate below",
        doc="A PMT whose hit rate (fraction of events) is below this value is dead.",
    )
    hot_cut = param.Number(
        default=DEFAULT_HOT_CUT,
        bounds=(0.0, 1.0),
        label="Hot: hit rate above",
        doc="A PMT whose hit rate (fraction of events) is above this value is hot.",
    )
    normal_band = param.Range(
        default=DEFAULT_NORMAL_BAND,
        bounds=(0.0, 1.0),
        label="Normal: hit rate within",
        doc="A PMT whose hit rate (fraction of events) lies in this band, ends included, is normal.",
    )

    pmt_table = param.DataFrame(
        default=None,
        columns=_GEOMETRY_COLUMNS,
        doc=(
            "PMT geometry ordered by pmt_id, as from dqm.detector.load_pmts() (the default): "
            "pmt_id, type, theta_deg, phi_deg (degrees) and the Aitoff coordinates aitoff_x, "
            "aitoff_y (degrees). Treated as read-only."
        ),
    )
    hit_rate = param.Array(
        default=None,
        allow_None=True,
        doc=(
            "Fraction of the run's events in which each PMT fired, one value per row of "
            "pmt_table; None (or NaN for a PMT) when the run has no PMT statistics yet."
        ),
    )
    mean_charge_pe = param.Array(
        default=None,
        allow_None=True,
        doc="Mean charge per hit of each PMT in photo-electrons; None (or NaN) when unknown.",
    )
    run_id = param.Integer(
        default=None, allow_None=True, bounds=(0, None), doc="The run the statistics belong to."
    )

    pmt_class = param.Array(
        default=None,
        constant=True,
        doc="Class of each PMT as an int8 index into PMT_CLASSES (DEAD, HOT, NORMAL, OTHER).",
    )
    n_dead = param.Integer(default=0, bounds=(0, None), constant=True, doc="Number of dead PMTs.")
    n_hot = param.Integer(default=0, bounds=(0, None), constant=True, doc="Number of hot PMTs.")
    n_normal = param.Integer(
        default=0, bounds=(0, None), constant=True, doc="Number of normal PMTs."
    )
    n_other = param.Integer(
        default=0,
        bounds=(0, None),
        constant=True,
        doc="Number of PMTs in no other class, those without statistics included.",
    )
    n_no_data = param.Integer(
        default=0,
        bounds=(0, None),
        constant=True,
        doc="Number of PMTs without statistics (hit rate NaN or absent); counted in n_other.",
    )
    has_statistics = param.Boolean(
        default=False, constant=True, doc="Whether at least one PMT has a hit rate."
    )
    cut_warning = param.String(
        default="",
        constant=True,
        doc="What contradictory cuts do, one sentence per problem; empty when the cuts agree.",
    )

    def __init__(self, **params: Any) -> None:
        if params.get("pmt_table") is None:
            params["pmt_table"] = load_pmts()
        n_pmts = len(params["pmt_table"])
        for name in ("hit_rate", "mean_charge_pe"):
            if params.get(name) is not None:
                params[name] = _per_pmt(params[name], n_pmts, name)
        super().__init__(**params)

    @classmethod
    def from_arrays(
        cls,
        hit_rate: np.ndarray | None,
        mean_charge_pe: np.ndarray | None,
        run_id: int | None = None,
        **cuts: Any,
    ) -> PmtCuts:
        """The state for one run's per-PMT arrays.

        Args:
            hit_rate: fraction of events in which each PMT fired, one value per PMT of
                ``load_pmts()`` (or of ``pmt_table`` when given in ``cuts``); None when the run has
                no PMT statistics yet.
            mean_charge_pe: mean charge per hit of each PMT in photo-electrons, or None.
            run_id: the run, for messages and the name of the CSV file.
            **cuts: ``dead_cut``, ``hot_cut``, ``normal_band`` (fractions of events) to start from
                instead of the defaults, and optionally ``pmt_table``.

        Raises:
            ValueError: an array does not hold one value per PMT, or a cut is outside [0, 1].
        """
        return cls(hit_rate=hit_rate, mean_charge_pe=mean_charge_pe, run_id=run_id, **cuts)

    def set_statistics(
        self,
        hit_rate: np.ndarray | None,
        mean_charge_pe: np.ndarray | None,
        run_id: int | None = None,
    ) -> None:
        """Show other statistics (a new run, or more files of the same run), keeping the cuts.

        The arrays are checked before anything changes and set in one batch, so the classes are
        computed once.

        Args:
            hit_rate: fraction of events in which each PMT fired, one value per PMT, or None.
            mean_charge_pe: mean charge per hit of each PMT in photo-electrons, or None.
            run_id: the run the arrays belong to.

        Raises:
            ValueError: an array does not hold one value per PMT.
        """
        n_pmts = len(self.pmt_table)
        self.param.update(
            hit_rate=None if hit_rate is None else _per_pmt(hit_rate, n_pmts, "hit_rate"),
            mean_charge_pe=(
                None
                if mean_charge_pe is None
                else _per_pmt(mean_charge_pe, n_pmts, "mean_charge_pe")
            ),
            run_id=run_id,
        )

    def hit_rate_values(self) -> np.ndarray:
        """The hit rate of every PMT (fraction of events) as float64, NaN where unknown."""
        return _per_pmt(self.hit_rate, len(self.pmt_table), "hit_rate")

    def mean_charge_values(self) -> np.ndarray:
        """The mean charge per hit of every PMT (PE) as float64, NaN where unknown."""
        return _per_pmt(self.mean_charge_pe, len(self.pmt_table), "mean_charge_pe")

    def pmt_class_names(self) -> np.ndarray:
        """The class of every PMT by name (``"dead"``, ``"hot"``, ``"normal"``, ``"other"``)."""
        return np.asarray(PMT_CLASSES)[self.pmt_class]

    @param.depends(
        "dead_cut", "hot_cut", "normal_band", "hit_rate", "pmt_table", watch=True, on_init=True
    )
    def _classify(self) -> None:
        rate = self.hit_rate_values()
        low, high = self.normal_band
        classes = np.full(rate.shape, OTHER, dtype=np.int8)
        # Later assignments win: dead over hot over normal. NaN compares false: stays OTHER.
        classes[(rate >= low) & (rate <= high)] = NORMAL
        classes[rate > self.hot_cut] = HOT
        classes[rate < self.dead_cut] = DEAD
        counts = np.bincount(classes, minlength=len(PMT_CLASSES))
        n_no_data = int(np.count_nonzero(np.isnan(rate)))
        with param.edit_constant(self):
            self.param.update(
                pmt_class=classes,
                n_dead=int(counts[DEAD]),
                n_hot=int(counts[HOT]),
                n_normal=int(counts[NORMAL]),
                n_other=int(counts[OTHER]),
                n_no_data=n_no_data,
                has_statistics=n_no_data < len(rate),
                cut_warning=self._contradictions(),
            )

    def _contradictions(self) -> str:
        dead, hot = self.dead_cut, self.hot_cut
        low, high = self.normal_band
        problems = []
        if dead > hot:
            problems.append(
                f"The dead cut ({_number(dead)}) is above the hot cut ({_number(hot)}): "
                "PMTs between the two count as dead."
            )
        if low > high:
            problems.append(
                f"The normal band runs backwards ({_number(low)} to {_number(high)}): "
                "no PMT is normal."
            )
        else:
            if low < dead:
                problems.append(
                    f"The normal band starts ({_number(low)}) below the dead cut "
                    f"({_number(dead)}): PMTs under the dead cut count as dead, not normal."
                )
            if high > hot:
                problems.append(
                    f"The normal band ends ({_number(high)}) above the hot cut ({_number(hot)}): "
                    "PMTs over the hot cut count as hot, not normal."
                )
        return " ".join(problems)

    def flagged(self) -> pd.DataFrame:
        """The dead and hot PMTs, dead first, each ordered by PMT id.

        Returns:
            One row per flagged PMT with the columns of :data:`FLAGGED_COLUMNS`: ``pmt_id``,
            ``type``, ``theta_deg`` and ``phi_deg`` (degrees), ``hit_rate`` (fraction of events),
            ``mean_charge_pe`` (PE, NaN when unknown) and ``class`` (``"dead"`` or ``"hot"``).
        """
        classes = self.pmt_class
        index = np.flatnonzero(classes <= HOT)
        # A stable sort by class keeps the ids ascending within each class.
        index = index[np.argsort(classes[index], kind="stable")]
        table = self.pmt_table
        return pd.DataFrame(
            {
                "pmt_id": table["pmt_id"].to_numpy()[index],
                "type": table["type"].astype(str).to_numpy()[index],
                "theta_deg": table["theta_deg"].to_numpy()[index],
                "phi_deg": table["phi_deg"].to_numpy()[index],
                "hit_rate": self.hit_rate_values()[index],
                "mean_charge_pe": self.mean_charge_values()[index],
                "class": np.asarray(PMT_CLASSES, dtype=object)[classes[index]],
            },
            columns=list(FLAGGED_COLUMNS),
        )


#: Milliseconds from a cut step to the legend and flagged table following it, under a server.
DETAILS_DELAY_MS = 250

#: The look of Bootstrap's warning alert, for the cut warning.
WARNING_STYLE = {
    "color": "#664d03",
    "background-color": "#fff3cd",
    "border": "1px solid #ffecb5",
    "border-radius": "0.375rem",
    "padding": "0.6rem 1rem",
}


class PmtMap(pn.viewable.Viewer):
    """The PMT map of a run: cut sliders, live class counts, the map and the flagged PMTs.

    The layout is built on the first call of ``__panel__`` and reused afterwards. A change of the
    cuts or of the statistics updates the columns of the existing :attr:`source` that changed (the
    class column only, for a cut) and the counts, legend and flagged table; the figure is never
    rebuilt. The same object works in a notebook and under ``panel serve``.

    A run without PMT statistics shows one sentence instead of the map.
    """

    cuts = param.ClassSelector(
        class_=PmtCuts,
        doc="The cuts and the run's PMT statistics (a new PmtCuts without statistics if omitted).",
    )
    colour_by = param.Selector(
        default="class",
        objects=["hit rate", "class"],
        doc="Colour the PMTs by their hit rate (log scale) or by their class under the cuts.",
    )

    def __init__(self, **params: Any) -> None:
        if params.get("cuts") is None:
            params["cuts"] = PmtCuts()
        super().__init__(**params)
        self._layout: pn.Column | None = None
        self._watched: tuple[PmtCuts, Any] | None = None
        # Inputs of the cuts last shown, compared by identity to update only what changed.
        self._shown: dict[str, Any] = {}
        self._watch_cuts()

    # --- public handles on the plot ---------------------------------------------------------

    @property
    def figure(self) -> Any:
        """The Bokeh figure of the map (built on first use, then always the same object)."""
        self.__panel__()
        return self._figure

    @property
    def source(self) -> ColumnDataSource:
        """The data of the map, one row per PMT (built on first use, then always the same object).

        Columns: ``pmt_id``, ``type``, ``theta_deg``, ``phi_deg``, ``aitoff_x``, ``aitoff_y``
        (degrees), ``hit_rate`` (fraction of events), ``mean_charge_pe`` (PE) and ``pmt_class``
        (int8 index into :data:`PMT_CLASSES`).
        """
        self.__panel__()
        return self._source

    def csv_filename(self) -> str:
        """Name of the CSV file of flagged PMTs, with the run id when known."""
        run_id = self.cuts.run_id
        return "flagged_pmts.csv" if run_id is None else f"run{run_id}_flagged_pmts.csv"

    def flagged_csv(self) -> io.StringIO:
        """The flagged PMTs as CSV (header and one row per PMT), as the download serves them."""
        return io.StringIO(self.cuts.flagged().to_csv(index=False))

    # --- layout -------------------------------------------------------------------------------

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._build()
        assert self._layout is not None
        return self._layout

    def _build(self) -> None:
        self._source = ColumnDataSource(self._columns(self.cuts))
        self._figure, self._pmt_renderer = self._make_figure(self._source)
        self._plot = pn.pane.Bokeh(self._figure, sizing_mode="stretch_width")
        self._controls = pn.Row(*self._sliders(), sizing_mode="stretch_width")
        # The counts, and the warning when the cuts contradict each other, in one static text:
        # one model change per cut step. (Not an HTML pane: Panel sends an HTML pane's style
        # sheets again with every new text, and Bokeh then walks the whole document for new
        # models, on every step.)
        self._counts = pn.widgets.StaticText(value="", margin=(0, 10), sizing_mode="stretch_width")
        self._message = pn.pane.Alert("", alert_type="info", visible=False)
        self._table = pn.widgets.Tabulator(
            self.cuts.flagged(),
            pagination="remote",
            page_size=20,
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
        )
        self._download = pn.widgets.FileDownload(
            callback=self.flagged_csv,
            filename=self.csv_filename(),
            label="Download flagged PMTs (CSV)",
            embed=False,
        )
        self._flagged = pn.Column(
            pn.Row(pn.pane.Markdown("#### Flagged PMTs (dead and hot)"), self._download),
            self._table,
            sizing_mode="stretch_width",
        )
        colour_by = pn.widgets.RadioButtonGroup.from_param(self.param.colour_by)
        self._layout = pn.Column(
            self._controls,
            pn.Row(self._counts, colour_by, sizing_mode="stretch_width"),
            self._message,
            self._plot,
            self._flagged,
            sizing_mode="stretch_width",
        )
        self._shown = self._inputs(self.cuts)
        self._details_due = False
        self._details_scheduled = True  # shown at once, below
        self._apply_colour_by()
        self._show_outputs(table_changed=False)
        self._show_details()

    def _sliders(self) -> list[pn.widgets.Widget]:
        cuts = self.cuts.param
        return [
            pn.widgets.FloatSlider.from_param(cuts.dead_cut, step=0.001, format="0.000"),
            pn.widgets.FloatSlider.from_param(cuts.hot_cut, step=0.001, format="0.000"),
            pn.widgets.RangeSlider.from_param(cuts.normal_band, step=0.001, format="0.000"),
        ]

    @staticmethod
    def _columns(cuts: PmtCuts) -> dict[str, np.ndarray]:
        table = cuts.pmt_table
        return {
            "pmt_id": table["pmt_id"].to_numpy(),
            "type": table["type"].astype(str).to_numpy(),
            "theta_deg": table["theta_deg"].to_numpy(),
            "phi_deg": table["phi_deg"].to_numpy(),
            "aitoff_x": table["aitoff_x"].to_numpy(),
            "aitoff_y": table["aitoff_y"].to_numpy(),
            "hit_rate": cuts.hit_rate_values(),
            "mean_charge_pe": cuts.mean_charge_values(),
            "pmt_class": cuts.pmt_class,
        }

    def _make_figure(self, source: ColumnDataSource) -> tuple[Any, Any]:
        fig = figure(
            title="PMT map",
            x_range=(-185.0, 185.0),
            y_range=(-95.0, 95.0),
            width=1000,
            height=560,
            sizing_mode="scale_width",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            output_backend="canvas",
            x_axis_label="Aitoff projection: θ = 0° at the top, φ = 0° at the centre, φ grows "
            "to the right",
        )
        fig.toolbar.logo = None
        # Projected coordinates mean nothing to the reader: keep the axis for its label only.
        fig.xaxis.ticker = []
        fig.xaxis.axis_line_color = None
        fig.yaxis.visible = False
        fig.grid.visible = False
        self._draw_graticule(fig)

        self._class_mapper = LinearColorMapper(
            palette=[CLASS_COLOURS[name] for name in PMT_CLASSES],
            low=-0.5,
            high=len(PMT_CLASSES) - 0.5,
        )
        self._rate_mapper = LogColorMapper(
            palette=Viridis256,
            low=_RATE_LOW,
            high=_RATE_HIGH,
            low_color=CLASS_COLOURS["dead"],
            high_color=Viridis256[-1],
            nan_color=_NO_DATA_COLOUR,
        )
        pmts = fig.scatter(
            "aitoff_x",
            "aitoff_y",
            source=source,
            size=4,
            line_color=None,
            fill_color=transform("pmt_class", self._class_mapper),
        )
        class_name = CustomJSHover(code=f"return {list(PMT_CLASSES)!r}[value] ?? 'other'")
        fig.add_tools(
            HoverTool(
                renderers=[pmts],
                tooltips=[
                    ("PMT", "@pmt_id (@type)"),
                    ("θ, φ", "@theta_deg{0.00}°, @phi_deg{0.00}°"),
                    ("hit rate", "@hit_rate{0.0000}"),
                    ("mean charge", "@mean_charge_pe{0.00} PE"),
                    ("class", "@pmt_class{custom}"),
                ],
                formatters={"@pmt_class": class_name},
            )
        )
        self._colour_bar = ColorBar(
            color_mapper=self._rate_mapper,
            ticker=LogTicker(),
            title="hit rate (black: below 0.001, grey: no data)",
            width=12,
        )
        fig.add_layout(self._colour_bar, "right")
        # One empty renderer per class gives the legend its swatches.
        self._legend_items = [
            LegendItem(
                label=name,
                renderers=[
                    fig.scatter(x=[], y=[], size=8, line_color=None, fill_color=CLASS_COLOURS[name])
                ],
            )
            for name in PMT_CLASSES
        ]
        self._legend = Legend(
            items=self._legend_items,
            location="top_left",
            background_fill_alpha=0.7,
            label_text_font_size="9pt",
        )
        fig.add_layout(self._legend)
        return fig, pmts

    @staticmethod
    def _draw_graticule(fig: Any) -> None:
        """Outline of the projection and lines every 30° of θ and 60° of φ, for orientation."""
        theta = np.linspace(0.0, 180.0, 91)
        for phi in (-180.0, -120.0, -60.0, 0.0, 60.0, 120.0, 180.0):
            x, y = aitoff(theta, np.full_like(theta, phi))
            edge = abs(phi) == 180.0
            fig.line(
                x, y, line_color="#888888" if edge else "#DDDDDD", line_width=1.5 if edge else 1
            )
        phi = np.linspace(-180.0, 180.0, 121)
        for theta_line in (30.0, 60.0, 90.0, 120.0, 150.0):
            x, y = aitoff(np.full_like(phi, theta_line), phi)
            fig.line(x, y, line_color="#DDDDDD")

    # --- updates --------------------------------------------------------------------------------

    @param.depends("cuts", watch=True)
    def _watch_cuts(self) -> None:
        if self._watched is not None:
            old, watcher = self._watched
            old.param.unwatch(watcher)
        watcher = self.cuts.param.watch(
            self._on_cuts_change,
            [
                "pmt_class",
                "n_dead",
                "n_hot",
                "n_normal",
                "n_other",
                "cut_warning",
                "hit_rate",
                "mean_charge_pe",
                "run_id",
                "pmt_table",
            ],
        )
        self._watched = (self.cuts, watcher)
        if self._layout is not None:
            # Widgets are bound to one PmtCuts: a new one gets new sliders, the figure stays.
            self._controls.objects = self._sliders()
            self._on_cuts_change()

    @staticmethod
    def _inputs(cuts: PmtCuts) -> dict[str, Any]:
        return {
            name: getattr(cuts, name)
            for name in ("pmt_table", "hit_rate", "mean_charge_pe", "pmt_class")
        }

    def _on_cuts_change(self, *events: param.parameterized.Event) -> None:
        if self._layout is None:
            return
        inputs = self._inputs(self.cuts)
        changed = {name for name, value in inputs.items() if value is not self._shown.get(name)}
        if changed == {"pmt_class"} and np.array_equal(
            inputs["pmt_class"], self._shown.get("pmt_class")
        ):
            # The cut moved but no PMT changed class: nothing to send again but the counts'
            # rules (most steps of a slider, between the dead PMTs and the live ones).
            changed = set()
        self._shown = inputs
        if "pmt_table" in changed:
            self._source.data = self._columns(self.cuts)
        elif changed:
            columns = {
                "hit_rate": self.cuts.hit_rate_values,
                "mean_charge_pe": self.cuts.mean_charge_values,
                "pmt_class": lambda: self.cuts.pmt_class,
            }
            self._source.data.update({name: columns[name]() for name in changed & set(columns)})
        self._show_outputs(table_changed=bool(changed))

    def _show_outputs(self, *, table_changed: bool) -> None:
        """What follows every cut step: the counts (and any warning) and the visibility of the
        map; the legend and the flagged table follow through :meth:`_schedule_details`."""
        cuts = self.cuts
        counts = self._class_counts()
        text = " · ".join(
            f'<span style="color:{CLASS_COLOURS[name]}">●</span> '
            f"{name.capitalize()} <b>{count:,}</b>"
            for name, count in counts.items()
        ) + (f" (of which {cuts.n_no_data:,} without statistics)" if cuts.n_no_data else "")
        if cuts.cut_warning:
            style = ";".join(f"{key}:{value}" for key, value in WARNING_STYLE.items())
            text += (
                f'<div class="cut-warning" style="{style}">{html.escape(cuts.cut_warning)}</div>'
            )
        self._counts.value = text
        self._message.object = self._no_statistics_message()
        self._message.visible = not cuts.has_statistics
        self._plot.visible = self._flagged.visible = cuts.has_statistics
        self._download.filename = self.csv_filename()
        self._details_due = self._details_due or table_changed
        self._schedule_details()
        pn.io.push_notebook(self._plot)

    def _class_counts(self) -> dict[str, int]:
        cuts = self.cuts
        return {
            "dead": cuts.n_dead,
            "hot": cuts.n_hot,
            "normal": cuts.n_normal,
            "other": cuts.n_other,
        }

    def _schedule_details(self) -> None:
        """Bring the legend and the flagged table up to date: at once in a notebook or a script;
        under a server, :data:`DETAILS_DELAY_MS` after a cut step, once for all the steps of a
        slider's drag in that time, so that the counts and colours of each step go first."""
        document = pn.state.curdoc
        if document is None or document.session_context is None:
            self._show_details()
        elif not self._details_scheduled:
            self._details_scheduled = True
            document.add_timeout_callback(self._show_details, DETAILS_DELAY_MS)

    def _show_details(self) -> None:
        self._details_scheduled = False
        cuts = self.cuts
        counts = self._class_counts()
        low, high = cuts.normal_band
        rules = {
            "dead": f"< {_number(cuts.dead_cut)}",
            "hot": f"> {_number(cuts.hot_cut)}",
            "normal": f"{_number(low)} to {_number(high)}",
            "other": "anything else",
        }
        for item, name in zip(self._legend_items, PMT_CLASSES, strict=True):
            item.label = value(f"{name} {counts[name]:,} ({rules[name]})")
        if self._details_due:
            self._details_due = False
            self._table.value = cuts.flagged()
        pn.io.push_notebook(self._plot)

    def _no_statistics_message(self) -> str:
        run_id = self.cuts.run_id
        if run_id is None:
            return (
                "There are no PMT statistics to show: choose a run whose files have been processed."
            )
        return f"Run {run_id} has no PMT statistics yet: its files are still being processed."

    @param.depends("colour_by", watch=True)
    def _apply_colour_by(self) -> None:
        if self._layout is None:
            return
        by_class = self.colour_by == "class"
        self._pmt_renderer.glyph.fill_color = (
            transform("pmt_class", self._class_mapper)
            if by_class
            else transform("hit_rate", self._rate_mapper)
        )
        self._legend.visible = by_class
        self._colour_bar.visible = not by_class
        pn.io.push_notebook(self._plot)
