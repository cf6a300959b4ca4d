"""The event display: the state's choice of event and its map columns, and the view following
it by new data in the same figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bokeh.document import Document
from imports import modules_loaded

from app.events import COLUMNS, EventsState
from app.eventsview import EventDisplay
from dqm import detector
from dqm.errors import InvalidValueError
from dqm.keptevents import KeptEvent


def make_events(n: int = 4, seq: int = 2) -> list[KeptEvent]:
    """``n`` events of 50 to 80 fired PMTs, event k of energy k + 1 MeV with its vertex on the
    +x axis (the centre of the map), the first at the exact centre of the detector."""
    rng = np.random.default_rng(5)
    events = []
    for k in range(n):
        size = 50 + 10 * k
        pmt = np.sort(rng.choice(detector.N_PMTS, size, replace=False))
        events.append(
            KeptEvent(
                entry=10 * k,
                trigger_time_s=1.5 + k,
                energy_mev=k + 1.0,
                vertex_mm=(1000.0 * k, 0.0, 0.0),
                n_hits=size + 7,
                pmt_id=pmt,
                charge_pe=rng.exponential(2.0, size) + 0.2,
                first_hit_ns=rng.normal(250.0, 10.0, size),
                reasons=("first",) if k < n - 1 else ("first", "highest"),
                seq=seq,
            )
        )
    return events


def loader_of(events: list[KeptEvent]) -> tuple[list[int], object]:
    """A loader that gives ``events`` and records the runs asked for."""
    asked: list[int] = []

    def load(run_id: int) -> list[KeptEvent]:
        asked.append(run_id)
        return events

    return asked, load


# --- the state ------------------------------------------------------------------------------


def test_the_events_state_loads_neither_panel_nor_bokeh() -> None:
    watched = ["bokeh", "holoviews", "panel", "sqlalchemy"]
    assert modules_loaded(["app.events"], watched) == []


def test_the_state_loads_a_run_and_steps_through_its_events_round_the_ends() -> None:
    events = make_events()
    asked, load = loader_of(list(reversed(events)))
    state = EventsState(loader=load, run_id=77)
    assert asked == [77]
    assert [e.entry for e in state.events] == [0, 10, 20, 30]  # by file and entry
    assert state.index == 0 and state.message == ""
    assert list(state.summaries.columns)[:3] == ["index", "seq", "entry"]
    assert state.summaries["reasons"].tolist()[-1] == "first, highest"
    assert state.labels()[1] == "77.2 event 10 — 2.00 MeV (first)"
    state.next()
    state.next()
    assert state.index == 2
    state.previous()
    assert state.index == 1
    state.show(3)
    state.next()
    assert state.index == 0
    state.previous()
    assert state.index == 3 and state.message == ""
    state.run_id = 78
    assert asked == [77, 78] and state.index == 0


@pytest.mark.parametrize("bad", [4, -1, "2", None, 1.0, True])
def test_a_bad_index_is_answered_in_a_sentence_and_changes_nothing(bad: object) -> None:
    _, load = loader_of(make_events())
    state = EventsState(loader=load, run_id=1)
    state.show(2)
    state.show(bad)
    assert state.index == 2
    assert state.message.endswith(".") and state.message.count(". ") == 0
    assert "4 kept events" in state.message or "not an event number" in state.message
    state.next()
    assert state.index == 3 and state.message == ""


def test_a_run_without_kept_events_says_so() -> None:
    state = EventsState(loader=lambda run_id: [], run_id=5)
    assert state.events == [] and state.index is None
    assert state.message.startswith("No events were kept for this run: ")
    state.next()
    state.show(0)
    assert state.index is None and state.message.startswith("No events were kept")
    assert all(len(v) == 0 for v in state.columns().values())
    assert state.vertex_xy() is None and state.caption() == "" and state.summaries.empty


def test_an_error_of_the_loader_is_its_sentence() -> None:
    def broken(run_id: int) -> list[KeptEvent]:
        raise InvalidValueError("These kept events are damaged and cannot be read: truncated.")

    state = EventsState(loader=broken, run_id=5)
    assert state.events == [] and "damaged" in state.message


def test_the_columns_are_the_fired_pmts_on_the_map_coloured_as_asked() -> None:
    events = make_events()
    state = EventsState(loader=lambda run_id: events, run_id=1)
    state.show(1)
    columns = state.columns()
    assert tuple(columns) == COLUMNS
    event = events[1]
    table = detector.load_pmts()
    assert columns["pmt_id"].tolist() == event.pmt_id.tolist()
    np.testing.assert_allclose(columns["x"], table["aitoff_x"].to_numpy()[event.pmt_id], atol=1e-4)
    np.testing.assert_allclose(columns["y"], table["aitoff_y"].to_numpy()[event.pmt_id], atol=1e-4)
    assert columns["value"].tolist() == event.charge_pe.tolist()
    assert columns["first_hit_ns"].tolist() == event.first_hit_ns.tolist()
    low, high = state.colour_range()
    assert low == pytest.approx(max(event.charge_pe.min(), 0.1)) and high == event.charge_pe.max()
    state.colour_by = "time"
    assert state.columns()["value"].tolist() == event.first_hit_ns.tolist()
    low, high = state.colour_range()
    assert event.first_hit_ns.min() <= low < 250.0 < high < event.first_hit_ns.max()


def test_pmt_ids_outside_the_detector_are_left_off_the_map() -> None:
    empty = np.zeros(3)
    event = KeptEvent(0, 0.0, 1.0, (1.0, 0.0, 0.0), 3, [4, -1, 10**6], [1, 2, 3], empty)
    state = EventsState(loader=lambda run_id: [event], run_id=1)
    assert state.columns()["pmt_id"].tolist() == [4]


def test_the_vertex_is_projected_by_its_direction_and_has_none_at_the_centre() -> None:
    events = make_events()
    events[2] = KeptEvent(
        20, 0.0, 3.0, (0.0, 0.0, -500.0), 1, [1], [1.0], [1.0], seq=2
    )  # south pole
    events[3] = KeptEvent(30, 0.0, 4.0, (0.0, 800.0, 0.0), 1, [1], [1.0], [1.0], seq=2)  # φ = 90°
    state = EventsState(loader=lambda run_id: events, run_id=1)
    assert state.vertex_xy() is None  # (0, 0, 0)
    state.show(1)
    assert state.vertex_xy() == pytest.approx((0.0, 0.0), abs=1e-9)  # θ = 90°, φ = 0°
    state.show(2)
    assert state.vertex_xy() == pytest.approx((0.0, -90.0), abs=1e-9)
    state.show(3)
    x, y = detector.aitoff(np.array([90.0]), np.array([90.0]))
    assert state.vertex_xy() == pytest.approx((x[0], y[0])) and x[0] > 0


def test_the_caption_gives_energy_hits_trigger_time_and_vertex() -> None:
    state = EventsState(loader=lambda run_id: make_events(), run_id=1)
    state.show(2)
    caption = state.caption()
    assert caption.startswith("Event 3 of 4 · E = 3.000 MeV · 77 hits on 70 PMTs")
    assert "trigger 3.500000 s into the run" in caption and "(2,000, 0, 0) mm" in caption
    assert math.isclose(float(caption.rsplit("r = ", 1)[1].split()[0].replace(",", "")), 2000)


# --- the view -------------------------------------------------------------------------------


def displayed(view: EventDisplay) -> Document:
    """The view's layout in a Bokeh document, as a server would hold it."""
    document = Document()
    document.add_root(view.__panel__().get_root(document))
    return document


def test_next_and_previous_replace_the_data_of_the_same_figure() -> None:
    events = make_events()
    state = EventsState(loader=lambda run_id: events, run_id=9)
    view = EventDisplay(state=state)
    document = displayed(view)
    layout, figure, source, vertex = view.__panel__(), view.figure, view.source, view.vertex_source
    assert list(source.data["pmt_id"]) == events[0].pmt_id.tolist()
    assert len(vertex.data["x"]) == 0  # the first event's vertex is at the centre
    assert view._select.value == 0
    assert view._select.labels[0] == "9.2 event 0 — 1.00 MeV (first)"
    models = {m.id for m in document.models}

    view._next.clicks += 1  # what a click in the browser does
    assert state.index == 1
    assert view.__panel__() is layout and view.figure is figure and view.source is source
    assert list(source.data["pmt_id"]) == events[1].pmt_id.tolist()
    assert list(vertex.data["x"]) == pytest.approx([0.0]) and view.vertex_source is vertex
    assert view._caption.value.startswith("Event 2 of 4 · E = 2.000 MeV")
    assert view._select.value == 1
    mapper = view._mappers["charge"]
    assert (mapper.low, mapper.high) == pytest.approx(state.colour_range())

    view._previous.clicks += 1
    view._previous.clicks += 1
    assert state.index == 3 and list(source.data["pmt_id"]) == events[3].pmt_id.tolist()
    view._select.value = 2
    assert state.index == 2 and list(source.data["pmt_id"]) == events[2].pmt_id.tolist()
    assert {m.id for m in document.models} == models  # nothing built again


def test_a_bad_index_shows_its_sentence_and_keeps_the_event() -> None:
    state = EventsState(loader=lambda run_id: make_events(), run_id=9)
    view = EventDisplay(state=state)
    view.__panel__()
    source_data = dict(view.source.data)
    state.show(12)
    assert view._message.visible and "There is no event 12" in view._message.object
    assert view._display.visible and state.index == 0
    assert all(view.source.data[k] is v for k, v in source_data.items())
    view._next.clicks += 1
    assert not view._message.visible and state.index == 1


def test_the_colour_toggle_sends_the_value_column_and_switches_the_scale() -> None:
    events = make_events()
    state = EventsState(loader=lambda run_id: events, run_id=9)
    view = EventDisplay(state=state)
    displayed(view)
    renderer = view._pmt_renderer
    assert renderer.glyph.fill_color.transform is view._mappers["charge"]
    pmt_column = view.source.data["pmt_id"]
    view._colour.value = "time"
    assert state.colour_by == "time"
    assert list(view.source.data["value"]) == events[0].first_hit_ns.tolist()
    assert view.source.data["pmt_id"] is pmt_column  # only the value column was sent again
    assert renderer.glyph.fill_color.transform is view._mappers["time"]
    assert view._colour_bars["time"].visible and not view._colour_bars["charge"].visible
    time_mapper = view._mappers["time"]
    assert (time_mapper.low, time_mapper.high) == pytest.approx(state.colour_range())
    view._next.clicks += 1
    assert list(view.source.data["value"]) == events[1].first_hit_ns.tolist()
    state.colour_by = "charge"
    assert view._colour.value == "charge"
    assert list(view.source.data["value"]) == events[1].charge_pe.tolist()
    assert renderer.glyph.fill_color.transform is view._mappers["charge"]


def test_a_run_without_kept_events_shows_one_sentence_instead_of_the_map() -> None:
    state = EventsState(loader=lambda run_id: [], run_id=9)
    view = EventDisplay(state=state)
    displayed(view)
    assert view._message.visible
    assert view._message.object.startswith("No events were kept for this run: ")
    assert not view._display.visible
    assert len(view.source.data["pmt_id"]) == 0


def test_a_new_run_or_a_new_state_refills_the_same_figure() -> None:
    events = make_events()
    runs = {1: events[:2], 2: events}
    state = EventsState(loader=lambda run_id: runs.get(run_id, []), run_id=1)
    view = EventDisplay(state=state)
    displayed(view)
    figure = view.figure
    assert len(view._select.options) == 2
    state.run_id = 2
    assert len(view._select.options) == 4 and view._select.value == 0
    state.run_id = 3
    assert not view._display.visible and view._message.object.startswith("No events were kept")
    view.state = EventsState(loader=lambda run_id: events, run_id=4)
    assert view.figure is figure and view._display.visible and len(view._select.options) == 4
    view._next.clicks += 1
    assert view.state.index == 1 and state.index is None


def test_the_run_page_reads_the_kept_events_of_a_processed_run(demo_data) -> None:
    """The demo's runs, processed by the job server: the Events tab reads what it kept."""
    import demo
    from app.main import DQMApp
    from app.source import Source
    from app.state import RunState

    source = Source(demo_data.database_url)
    run = RunState(source=source, run_id=demo.FAULTY_RUN)
    assert run.kept_events is not None and run.kept_events.events == []  # not read yet
    run.open_events()
    events = run.kept_events
    assert 10 <= len(events.events) <= 20 and events.message == ""
    assert {e.seq for e in events.events} == {0}
    assert sum("first" in e.reasons for e in events.events) == 10
    events.show(len(events.events))
    assert events.message.startswith(f"There is no event {len(events.events)}:")
    app = DQMApp(source=source, run=str(demo.FAULTY_RUN), tab="events", refresh_s=0)
    assert not app._message.visible
    assert app.run_state.kept_events is not None and app.run_state.kept_events.events
