"""The event display: one kept event of a run on the Aitoff map of the detector's PMTs.

:class:`EventDisplay` is the view (a ``pn.viewable.Viewer``) of an :class:`app.events.EventsState`:
a select of the run's kept events with Previous and Next buttons, a toggle between colouring the
fired PMTs by charge (log scale) and by first-hit time, the map with its colour bar and the
reconstructed vertex's direction as a star, a line with the energy, hits, trigger time and vertex,
and the PMT id, charge and time on hover. Moving to another event sends the new columns of the
existing map's data sources; the figure is built once and never rebuilt, so that the next event
shows at once.

Example (in a notebook)::

    EventDisplay(state=EventsState(loader=lambda run_id: events, run_id=1234))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import panel as pn
import param
from bokeh.models import (
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    LogColorMapper,
    LogTicker,
)
from bokeh.models.annotations import ColorBar, Legend, LegendItem  # bokeh.models: lazy exports
from bokeh.palettes import Cividis256, Viridis256
from bokeh.transform import transform

from app.events import EventsState
from app.pmtmap import aitoff_figure

if TYPE_CHECKING:
    from bokeh.models.sources import DataDict

__all__ = ["VERTEX_COLOUR", "EventDisplay"]

#: The vertex marker's colour (Okabe-Ito vermilion: apart from both colour scales).
VERTEX_COLOUR = "#D55E00"

_TITLES = {
    "charge": "charge per PMT (PE, log scale)",
    "time": "first-hit time (ns, 2nd to 90th percentile)",
}


class EventDisplay(pn.viewable.Viewer):
    """The kept events of a run, one at a time, on the PMT map.

    The layout is built on the first call of ``__panel__`` and reused afterwards. A change of the
    event shown replaces the data of the existing :attr:`source` (and of the vertex marker's), the
    colour scale's range and the caption; the colour toggle sends the ``value`` column alone. A
    run without kept events shows the state's sentence instead of the map.
    """

    state = param.ClassSelector(
        class_=EventsState, doc="The run's kept events (a new EventsState if omitted)."
    )

    def __init__(self, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = EventsState()
        super().__init__(**params)
        self._layout: pn.Column | None = None
        self._watched: tuple[EventsState, list[Any]] | None = None
        self._watch_state()

    @property
    def _state(self) -> EventsState:
        """:attr:`state`, always set (the constructor makes one when none is given), though
        param types the parameter as optional."""
        assert self.state is not None
        return self.state

    # --- public handles on the plot ---------------------------------------------------------

    @property
    def figure(self) -> Any:
        """The Bokeh figure of the map (built on first use, then always the same object)."""
        self.__panel__()
        return self._figure

    @property
    def source(self) -> ColumnDataSource:
        """The fired PMTs of the event shown (:data:`app.events.COLUMNS`; built on first use, then
        always the same object)."""
        self.__panel__()
        return self._source

    @property
    def vertex_source(self) -> ColumnDataSource:
        """The vertex marker's position, ``x`` and ``y`` (empty when it has none)."""
        self.__panel__()
        return self._vertex

    # --- layout -----------------------------------------------------------------------------

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._build()
        assert self._layout is not None
        return self._layout

    def _build(self) -> None:
        state = self._state
        self._source = ColumnDataSource(self._pmt_columns())
        self._vertex = ColumnDataSource(self._vertex_columns())
        self._figure, self._pmt_renderer = self._make_figure()
        self._plot = pn.pane.Bokeh(self._figure, sizing_mode="stretch_width")
        self._select = pn.widgets.Select(
            label="Event", options={}, sizing_mode="stretch_width", min_width=300
        )
        self._previous = pn.widgets.Button(
            label="◀ Previous", width=110, align="end", css_classes=["event-previous"]
        )
        self._next = pn.widgets.Button(
            label="Next ▶",
            width=110,
            align="end",
            color="primary",
            css_classes=["event-next"],
        )
        self._colour = pn.widgets.RadioButtonGroup(
            options={"Charge": "charge", "First-hit time": "time"},
            value=state.colour_by,
            align="end",
            css_classes=["event-colour"],
        )
        self._previous.on_click(lambda event: self._state.previous())
        self._next.on_click(lambda event: self._state.next())
        self._select.param.watch(self._on_select, "value")
        self._colour.param.watch(self._on_colour_widget, "value")
        # A static text, not an HTML pane: one small model change per event (Panel sends an HTML
        # pane's style sheets again with every new text).
        self._caption = pn.widgets.StaticText(
            value="", margin=(0, 10), sizing_mode="stretch_width", css_classes=["event-caption"]
        )
        self._message = pn.pane.Alert("", alert_type="info", visible=False)
        self._controls = pn.Row(
            self._previous, self._select, self._next, self._colour, sizing_mode="stretch_width"
        )
        # Shown or hidden as a whole (the Bokeh pane's own visibility follows its figure's).
        self._display = pn.Column(
            self._controls, self._caption, self._plot, sizing_mode="stretch_width"
        )
        self._layout = pn.Column(self._message, self._display, sizing_mode="stretch_width")
        self._show_events()

    def _make_figure(self) -> tuple[Any, Any]:
        fig = aitoff_figure()

        self._mappers: dict[str, LinearColorMapper | LogColorMapper] = {
            "charge": LogColorMapper(palette=Viridis256, low=0.1, high=1.0),
            "time": LinearColorMapper(palette=Cividis256, low=0.0, high=1.0),
        }
        pmts = fig.scatter(
            "x",
            "y",
            source=self._source,
            size=5,
            line_color=None,
            fill_color=transform("value", self._mappers[self._state.colour_by]),
        )
        fig.add_tools(
            HoverTool(
                renderers=[pmts],
                tooltips=[
                    ("PMT", "@pmt_id"),
                    ("charge", "@charge_pe{0.00} PE"),
                    ("first hit", "@first_hit_ns{0.0} ns"),
                ],
            )
        )
        self._colour_bars = {
            "charge": ColorBar(
                color_mapper=self._mappers["charge"],
                ticker=LogTicker(),
                title=_TITLES["charge"],
                width=12,
            ),
            "time": ColorBar(color_mapper=self._mappers["time"], title=_TITLES["time"], width=12),
        }
        for name, bar in self._colour_bars.items():
            bar.visible = name == self._state.colour_by
            fig.add_layout(bar, "right")
        vertex = fig.scatter(
            "x",
            "y",
            source=self._vertex,
            marker="star",
            size=22,
            fill_color=VERTEX_COLOUR,
            line_color="black",
            line_width=1.5,
        )
        item = LegendItem(label="vertex direction", renderers=[vertex])
        fig.add_layout(
            Legend(
                items=[item],
                location="top_left",
                background_fill_alpha=0.7,
                label_text_font_size="9pt",
            )
        )
        return fig, pmts

    # --- following the state ----------------------------------------------------------------

    @param.depends("state", watch=True)
    def _watch_state(self) -> None:
        if self._watched is not None:
            old, watchers = self._watched
            for watcher in watchers:
                old.param.unwatch(watcher)
        state = self._state
        watchers = [
            state.param.watch(self._on_events, ["events"]),
            state.param.watch(self._on_index, ["index"]),
            state.param.watch(self._on_colour, ["colour_by"]),
            state.param.watch(self._on_message, ["message"]),
        ]
        self._watched = (state, watchers)
        if self._layout is not None:
            self._show_events()

    def _on_events(self, *events: param.parameterized.Event) -> None:
        if self._layout is not None:
            self._show_events()

    def _on_index(self, *events: param.parameterized.Event) -> None:
        if self._layout is not None:
            with pn.io.hold():
                self._show_event()

    def _on_message(self, *events: param.parameterized.Event) -> None:
        if self._layout is not None:
            self._show_message()

    def _on_select(self, event: param.parameterized.Event) -> None:
        if event.new is not None and event.new != self._state.index:
            self._state.show(event.new)

    def _on_colour_widget(self, event: param.parameterized.Event) -> None:
        self._state.colour_by = event.new

    def _on_colour(self, *events: param.parameterized.Event) -> None:
        if self._layout is None:
            return
        with pn.io.hold():
            colour_by = self._state.colour_by
            self._colour.value = colour_by
            data = self._source.data
            assert isinstance(data, dict)  # bokeh also types data as a DataFrame or a GroupBy
            data.update(value=self._state.columns()["value"])
            self._pmt_renderer.glyph.fill_color = transform("value", self._mappers[colour_by])
            for name, bar in self._colour_bars.items():
                bar.visible = name == colour_by
            self._set_colour_range()
        pn.io.push_notebook(self._plot)

    def _show_events(self) -> None:
        """The whole view from the state: the list of events, then the one shown."""
        state = self._state
        with pn.io.hold():
            self._select.options = dict(zip(state.labels(), range(len(state.events)), strict=True))
            self._display.visible = bool(state.events)
            self._colour.value = state.colour_by
            self._show_event()
            self._show_message()

    def _show_event(self) -> None:
        """The event shown: the map's data, the vertex, the colour scale, the caption."""
        state = self._state
        self._source.data = self._pmt_columns()
        self._vertex.data = self._vertex_columns()
        self._set_colour_range()
        self._caption.value = state.caption()
        if state.index is not None:
            self._select.value = state.index
        pn.io.push_notebook(self._plot)

    def _pmt_columns(self) -> DataDict:
        data: DataDict = {**self._state.columns()}
        return data

    def _vertex_columns(self) -> DataDict:
        xy = self._state.vertex_xy()
        if xy is None:
            return {"x": np.zeros(0), "y": np.zeros(0)}
        return {"x": np.array([xy[0]]), "y": np.array([xy[1]])}

    def _set_colour_range(self) -> None:
        low, high = self._state.colour_range()
        self._mappers[self._state.colour_by].update(low=low, high=high)

    def _show_message(self) -> None:
        message = self._state.message
        self._message.object = message
        self._message.visible = bool(message)
        # a sentence about a request that could not be met is a warning; why nothing is shown is
        # information
        self._message.alert_type = "warning" if self._state.events else "info"
