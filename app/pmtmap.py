"""The PMT map: every large PMT of a run on an Aitoff projection, classified by cuts on its hit rate.

:class:`PmtMap` is the view (a ``pn.viewable.Viewer``) of a :class:`app.cuts.PmtCuts` state:
sliders for the cuts, the counts, the map of the 17,612 PMTs and the table of flagged PMTs with a
CSV download. Moving a slider recolours the existing map in place; it never rebuilds it. The
classes and the default cuts are those of :mod:`dqm.pmtclass`.

Example (in a notebook)::

    cuts = PmtCuts.from_arrays(hit_rate, mean_charge_pe, run_id=1234, dead_cut=0.02)
    PmtMap(cuts=cuts)
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
import param
from bokeh.core.properties import value
from bokeh.models import (
    ColumnDataSource,
    CustomJSHover,
    HoverTool,
    LinearColorMapper,
    LogColorMapper,
    LogTicker,
    Range1d,
)
from bokeh.models.annotations import ColorBar, Legend, LegendItem  # bokeh.models: lazy exports
from bokeh.palettes import Viridis256
from bokeh.plotting import figure
from bokeh.transform import transform

from app.cuts import PmtCuts
from dqm.detector import aitoff
from dqm.pmtclass import PMT_CLASSES

if TYPE_CHECKING:
    from bokeh.models.sources import DataDict

__all__ = ["CLASS_COLOURS", "PmtMap", "aitoff_figure", "draw_graticule"]

#: Class colours (Okabe-Ito palette, distinguishable with the common colour-vision deficiencies).
CLASS_COLOURS = {
    "dead": "#000000",
    "hot": "#D55E00",
    "normal": "#009E73",
    "other": "#E69F00",
}

#: Hit-rate colour scale of the map (logarithmic): rates below the low end, a dead PMT's 0
#: included, are drawn in the dead colour.
_RATE_LOW, _RATE_HIGH = 1e-3, 1.0
_NO_DATA_COLOUR = "#BBBBBB"

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


def draw_graticule(fig: Any) -> None:
    """Outline of the Aitoff projection and lines every 30° of θ and 60° of φ, for orientation (the
    PMT map's, and any other map of the detector's PMTs)."""
    theta = np.linspace(0.0, 180.0, 91)
    for phi in (-180.0, -120.0, -60.0, 0.0, 60.0, 120.0, 180.0):
        x, y = aitoff(theta, np.full_like(theta, phi))
        edge = abs(phi) == 180.0
        fig.line(x, y, line_color="#888888" if edge else "#DDDDDD", line_width=1.5 if edge else 1)
    phis = np.linspace(-180.0, 180.0, 121)
    for theta_line in (30.0, 60.0, 90.0, 120.0, 150.0):
        x, y = aitoff(np.full_like(phis, theta_line), phis)
        fig.line(x, y, line_color="#DDDDDD")


def aitoff_figure(**options: Any) -> Any:
    """An empty Bokeh figure for a map of the detector's PMTs on the Aitoff projection: its
    ranges, tools, the axis kept for its label only, and the graticule (``options``: more of
    :func:`bokeh.plotting.figure`'s, e.g. a title)."""
    # bokeh's stubs declare figure's own options (tools, axis labels, ...) as InitVars of
    # dataclasses without __init__, which mypy does not count as arguments
    fig = figure(  # type: ignore[call-arg]
        x_range=Range1d(start=-185.0, end=185.0),
        y_range=Range1d(start=-95.0, end=95.0),
        width=1000,
        height=560,
        sizing_mode="scale_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        output_backend="canvas",
        x_axis_label="Aitoff projection: θ = 0° at the top, φ = 0° at the centre, φ grows "
        "to the right",
        **options,
    )
    fig.toolbar.logo = None
    # Projected coordinates mean nothing to the reader: keep the axis for its label only.
    fig.xaxis.ticker = []
    fig.xaxis.axis_line_color = None
    fig.yaxis.visible = False
    fig.grid.visible = False
    draw_graticule(fig)
    return fig


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
    colour_by: param.Selector[str] = param.Selector(
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

    @property
    def _cuts(self) -> PmtCuts:
        """:attr:`cuts`, always set (the constructor makes one when none is given), though param
        types the parameter as optional."""
        assert self.cuts is not None
        return self.cuts

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
        run_id = self._cuts.run_id
        return "flagged_pmts.csv" if run_id is None else f"run{run_id}_flagged_pmts.csv"

    def flagged_csv(self) -> io.StringIO:
        """The flagged PMTs as CSV (header and one row per PMT), as the download serves them."""
        return io.StringIO(self._cuts.flagged().to_csv(index=False))

    # --- layout -------------------------------------------------------------------------------

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._build()
        assert self._layout is not None
        return self._layout

    def _build(self) -> None:
        self._source = ColumnDataSource(self._columns(self._cuts))
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
            self._cuts.flagged(),
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
        self._shown = self._inputs(self._cuts)
        self._details_due = False
        self._details_scheduled = True  # shown at once, below
        self._apply_colour_by()
        self._show_outputs(table_changed=False)
        self._show_details()

    def _sliders(self) -> list[pn.widgets.Widget]:
        cuts = self._cuts.param
        return [
            pn.widgets.FloatSlider.from_param(cuts.dead_cut, step=0.001, format="0.000"),
            pn.widgets.FloatSlider.from_param(cuts.hot_cut, step=0.001, format="0.000"),
            pn.widgets.RangeSlider.from_param(cuts.normal_band, step=0.001, format="0.000"),
        ]

    @staticmethod
    def _classes(cuts: PmtCuts) -> np.ndarray:
        """The class of every PMT (computed when the PmtCuts is made; param types it optional)."""
        assert cuts.pmt_class is not None
        return cuts.pmt_class

    @staticmethod
    def _columns(cuts: PmtCuts) -> DataDict:
        table = cuts.pmt_table
        assert table is not None  # set when the PmtCuts is made
        return {
            "pmt_id": table["pmt_id"].to_numpy(),
            "type": table["type"].astype(str).to_numpy(),
            "theta_deg": table["theta_deg"].to_numpy(),
            "phi_deg": table["phi_deg"].to_numpy(),
            "aitoff_x": table["aitoff_x"].to_numpy(),
            "aitoff_y": table["aitoff_y"].to_numpy(),
            "hit_rate": cuts.hit_rate_values(),
            "mean_charge_pe": cuts.mean_charge_values(),
            "pmt_class": PmtMap._classes(cuts),
        }

    def _make_figure(self, source: ColumnDataSource) -> tuple[Any, Any]:
        fig = aitoff_figure(title="PMT map")

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

    # --- updates --------------------------------------------------------------------------------

    @param.depends("cuts", watch=True)
    def _watch_cuts(self) -> None:
        if self._watched is not None:
            old, watcher = self._watched
            old.param.unwatch(watcher)
        watcher = self._cuts.param.watch(
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
        self._watched = (self._cuts, watcher)
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
        inputs = self._inputs(self._cuts)
        changed = {name for name, value in inputs.items() if value is not self._shown.get(name)}
        # (pmt_class alone changed: _shown holds every input, as _inputs gave them)
        if changed == {"pmt_class"} and np.array_equal(
            inputs["pmt_class"], self._shown["pmt_class"]
        ):
            # The cut moved but no PMT changed class: nothing to send again but the counts'
            # rules (most steps of a slider, between the dead PMTs and the live ones).
            changed = set()
        self._shown = inputs
        if "pmt_table" in changed:
            self._source.data = self._columns(self._cuts)
        elif changed:
            columns: dict[str, Callable[[], np.ndarray]] = {
                "hit_rate": self._cuts.hit_rate_values,
                "mean_charge_pe": self._cuts.mean_charge_values,
                "pmt_class": lambda: self._classes(self._cuts),
            }
            data = self._source.data
            assert isinstance(data, dict)  # bokeh also types data as a DataFrame or a GroupBy
            data.update({name: columns[name]() for name in changed & set(columns)})
        self._show_outputs(table_changed=bool(changed))

    def _show_outputs(self, *, table_changed: bool) -> None:
        """What follows every cut step: the counts (and any warning) and the visibility of the
        map; the legend and the flagged table follow through :meth:`_schedule_details`."""
        cuts = self._cuts
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
        cuts = self._cuts
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
        cuts = self._cuts
        counts = self._class_counts()
        rules = cuts.hit_rate_cuts().rules()
        for item, name in zip(self._legend_items, PMT_CLASSES, strict=True):
            item.label = value(f"{name} {counts[name]:,} ({rules[name]})")
        if self._details_due:
            self._details_due = False
            self._table.value = cuts.flagged()
        pn.io.push_notebook(self._plot)

    def _no_statistics_message(self) -> str:
        run_id = self._cuts.run_id
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
