"""State of the event display: a run's kept events (:mod:`dqm.keptevents`), the one shown and how
its PMTs are coloured, and the columns its map draws.

:class:`EventsState` holds no widgets and imports neither Panel nor Bokeh: the run page's *Events*
tab (:mod:`app.eventsview`) only reads it, and it is tested without a server. It reads the events
through a loader given to it (``loader(run_id) -> list[KeptEvent]``: the dashboard's
``Source.kept_events``, or a list in a test or a notebook).

Example (in a notebook)::

    state = EventsState(loader=lambda run_id: events, run_id=1234)
    state.next()
    state.columns()["charge_pe"], state.vertex_xy(), state.caption()
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import param

from dqm import detector
from dqm.errors import DQMError
from dqm.keptevents import KeptEvent

__all__ = ["COLOUR_BY", "COLUMNS", "SUMMARY_COLUMNS", "EventsState", "Loader"]

#: Reads a run's kept events.
Loader = Callable[[int], list[KeptEvent]]

#: What the PMTs of the map can be coloured by: their summed charge or their first-hit time.
COLOUR_BY = ("charge", "time")
#: The columns of :meth:`EventsState.columns`, one row per fired PMT.
COLUMNS = ("x", "y", "value", "pmt_id", "charge_pe", "first_hit_ns")
#: The columns of :attr:`EventsState.summaries`, one row per kept event.
SUMMARY_COLUMNS = (
    "index",
    "seq",
    "entry",
    "energy_mev",
    "n_hits",
    "n_pmts",
    "trigger_time_s",
    "reasons",
)


@functools.cache
def _pmt_xy() -> tuple[np.ndarray, np.ndarray]:
    """The Aitoff coordinates of every PMT, degrees, by PMT id (float32, read-only)."""
    table = detector.load_pmts()
    x = table["aitoff_x"].to_numpy(dtype=np.float32)
    y = table["aitoff_y"].to_numpy(dtype=np.float32)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _empty_summaries() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in SUMMARY_COLUMNS})


class EventsState(param.Parameterized):
    """The kept events of a run and the one shown.

    Setting :attr:`run_id` (or calling :meth:`load`) reads the run's events and shows the first.
    :meth:`next`, :meth:`previous` and :meth:`show` change the event shown; a request that cannot
    be met leaves everything as it was and says why in :attr:`message`.
    """

    loader = param.Callable(
        default=None, allow_None=True, doc="Reads a run's kept events: loader(run_id)."
    )
    run_id = param.Integer(default=None, allow_None=True, doc="The run whose events are shown.")
    events = param.List(
        default=[], item_type=KeptEvent, doc="The run's kept events, by file and entry."
    )
    summaries = param.DataFrame(
        default=_empty_summaries(),
        doc="One row per kept event (SUMMARY_COLUMNS); `index` is its position in `events`.",
    )
    index = param.Integer(
        default=None, allow_None=True, doc="The position in `events` of the event shown."
    )
    colour_by: param.Selector[str] = param.Selector(
        default="charge", objects=list(COLOUR_BY), doc="What colours the fired PMTs."
    )
    message = param.String(
        default="", doc="Why nothing is shown, or what was wrong, in a sentence."
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.run_id is not None:
            self.load()

    # --- reading ----------------------------------------------------------------------------

    @param.depends("run_id", watch=True)
    def load(self) -> None:
        """Read the events of :attr:`run_id` again and show the first of them."""
        events: list[KeptEvent] = []
        message = ""
        if self.run_id is None:
            message = "Choose a run to see its kept events."
        elif self.loader is None:
            message = "There is nowhere to read kept events from."
        else:
            try:
                events = list(self.loader(self.run_id))
            except DQMError as exc:
                message = str(exc)
            if not events and not message:
                message = self._no_events()
        events.sort(key=lambda e: (-1 if e.seq is None else e.seq, e.entry))
        self.param.update(
            events=events,
            summaries=self._summaries(events),
            index=0 if events else None,
            message=message,
        )

    def _no_events(self) -> str:
        return (
            f"No events were kept for this run: run {self.run_id} has no processed file with "
            "a reconstructed physics event yet."
        )

    @staticmethod
    def _summaries(events: list[KeptEvent]) -> pd.DataFrame:
        if not events:
            return _empty_summaries()
        return pd.DataFrame(
            {
                "index": np.arange(len(events)),
                "seq": pd.array([e.seq for e in events], dtype="Int64"),
                "entry": [e.entry for e in events],
                "energy_mev": [e.energy_mev for e in events],
                "n_hits": [e.n_hits for e in events],
                "n_pmts": [e.n_pmts for e in events],
                "trigger_time_s": [e.trigger_time_s for e in events],
                "reasons": [", ".join(e.reasons) for e in events],
            }
        )

    # --- choosing ---------------------------------------------------------------------------

    @property
    def event(self) -> KeptEvent | None:
        """The event shown (None: none)."""
        return None if self.index is None else self.events[self.index]

    def labels(self) -> list[str]:
        """A label per event, in order and all different: ``run.seq event N — E MeV (reasons)``
        (an event is known by its id in the raw file)."""
        run = "?" if self.run_id is None else str(self.run_id)
        labels: list[str] = []
        seen: set[str] = set()
        for event in self.events:
            file = run if event.seq is None else f"{run}.{event.seq}"
            label = f"{file} event {event.entry} — {event.energy_mev:.2f} MeV"
            if event.reasons:
                label += f" ({', '.join(event.reasons)})"
            while label in seen:  # the same file and entry twice: told apart all the same
                label += " ·"
            seen.add(label)
            labels.append(label)
        return labels

    def show(self, index: Any) -> None:
        """Show the event at ``index`` in :attr:`events` (0 for the first)."""
        count = len(self.events)
        if not count:
            self.message = self.message or self._no_events()
            return
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            self.message = f"'{str(index)[:40]}' is not an event number: choose one of the list."
            return
        if not 0 <= index < count:
            self.message = (
                f"There is no event {index}: this run has {count} kept events, "
                f"numbered 0 to {count - 1}."
            )
            return
        self.param.update(index=int(index), message="")

    def next(self) -> None:
        """Show the next event (after the last, the first)."""
        self._step(+1)

    def previous(self) -> None:
        """Show the event before (before the first, the last)."""
        self._step(-1)

    def _step(self, step: int) -> None:
        if not self.events:
            self.message = self.message or self._no_events()
            return
        current = 0 if self.index is None else self.index
        self.show((current + step) % len(self.events))

    # --- what the map draws -----------------------------------------------------------------

    def columns(self) -> dict[str, np.ndarray]:
        """The map's data, one row per fired PMT of the event shown (none without one):

        ``x``, ``y`` (Aitoff coordinates, degrees, as :func:`dqm.detector.load_pmts` gives them),
        ``value`` (what colours the PMT: its charge or its first-hit time, by :attr:`colour_by`),
        ``pmt_id``, ``charge_pe``, ``first_hit_ns``. PMT ids that are not in the detector's table
        are left out.
        """
        event = self.event
        px, py = _pmt_xy()
        if event is None:
            pmt = np.zeros(0, np.int32)
            charge = time = np.zeros(0, np.float32)
        else:
            pmt, charge, time = event.pmt_id, event.charge_pe, event.first_hit_ns
            known = (pmt >= 0) & (pmt < px.size)
            if not known.all():
                pmt, charge, time = pmt[known], charge[known], time[known]
        return {
            "x": px[pmt],
            "y": py[pmt],
            "value": charge if self.colour_by == "charge" else time,
            "pmt_id": pmt,
            "charge_pe": charge,
            "first_hit_ns": time,
        }

    def vertex_xy(self) -> tuple[float, float] | None:
        """Where the vertex of the event shown lies on the map: its direction from the centre of
        the detector, projected as the PMTs are (None: no event, or a vertex at the exact centre
        or not finite, which has no direction)."""
        event = self.event
        if event is None:
            return None
        x, y, z = event.vertex_mm
        r = math.hypot(x, y, z)
        if not math.isfinite(r) or r == 0.0:
            return None
        theta = math.degrees(math.acos(max(-1.0, min(1.0, z / r))))
        phi = math.degrees(math.atan2(y, x))
        ax, ay = detector.aitoff(np.array([theta]), np.array([phi]))
        return float(ax[0]), float(ay[0])

    def colour_range(self) -> tuple[float, float]:
        """The colour scale of the event shown, ``(low, high)``.

        Charge: from the smallest positive charge (at least 0.1 PE) to the largest, for a log
        scale. Time: the 2nd to the 90th percentile of the first-hit times, so that the dark-noise
        hits spread over the readout window do not flatten the scale of the light's arrival.
        """
        values = self.columns()["value"]
        values = values[np.isfinite(values)]
        if self.colour_by == "charge":
            positive = values[values > 0]
            if not positive.size:
                return 0.1, 1.0
            low = max(float(positive.min()), 0.1)
            return low, max(float(positive.max()), 2 * low)
        if not values.size:
            return 0.0, 1.0
        low, high = (float(v) for v in np.percentile(values, [2, 90]))
        return low, max(high, low + 1.0)

    def caption(self) -> str:
        """One line on the event shown: energy, hits, trigger time and vertex ("" without one)."""
        event = self.event
        if event is None or self.index is None:
            return ""
        x, y, z = event.vertex_mm
        r = math.hypot(x, y, z)
        return (
            f"Event {self.index + 1} of {len(self.events)} · E = {event.energy_mev:.3f} MeV · "
            f"{event.n_hits:,} hits on {event.n_pmts:,} PMTs · trigger "
            f"{event.trigger_time_s:,.6f} s into the run · "
            f"vertex ({x:,.0f}, {y:,.0f}, {z:,.0f}) mm, r = {r:,.0f} mm"
        )
