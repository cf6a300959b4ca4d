"""Tiny raw files of hand-chosen contents, committed under ``tests/data/raw/``.

The tests of the readers (:mod:`dqm.rawformat`, :mod:`pipeline.stages.reading`) read these files
and compare what they get with the contents described here, event by event and hit by hit. They are
written with uproot alone, in the format that :mod:`dqm.rawformat` documents, never with the DAQ
simulator: the readers' tests do not depend on the program that writes the same format.

Write them again after a change of the format with::

    python tests/rawfixtures.py

``tests/test_rawfixtures.py`` checks that the committed files hold what this module describes and
that writing them again gives the same contents.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: the checkout's packages, not the folders of tests/
    sys.path.insert(0, str(ROOT))

from dqm import rawformat
from dqm.rawformat import TRIGGER_GLOBAL, TRIGGER_LASER, TRIGGER_RANDOM

#: Where the files are committed.
RAW_FIXTURES_DIR = Path(__file__).resolve().parent / "data" / "raw"

#: The run of every fixture (its files are its sequence numbers 0, 1 and 2).
RUN_ID = 7001


#: The jagged record written as the hit branches: uproot names them ``hits_<field>`` and their
#: counter ``nhits`` (:data:`dqm.rawformat.HIT_BRANCHES`, :data:`dqm.rawformat.HIT_COUNTER`).
HITS = "hits"
HITS_TYPE = "var * {" + ", ".join(f"{n}: {t.name}" for n, t in rawformat.HIT_FIELDS.items()) + "}"


@dataclass(frozen=True)
class Hit:
    """One PMT hit: PMT id, pedestal-subtracted charge (ADC counts) and time (ns in the window).

    The values are exact in float32, so that what is read back equals them exactly.
    """

    pmt_id: int
    adc: float
    tdc: float


@dataclass(frozen=True)
class Event:
    """One triggered event: id, trigger time (ns since the start of the run), type, hits."""

    event_id: int
    trigger_time: int
    trigger_type: int
    hits: tuple[Hit, ...] = ()


@dataclass(frozen=True)
class RawFixture:
    """A raw file of known contents.

    Attributes:
        name: file name under :data:`RAW_FIXTURES_DIR`.
        seq: sequence number in run :data:`RUN_ID`.
        events: the events, in the file's order.
        baskets: events written per ``extend`` (one basket per branch each), summing to the
            number of events; empty for a file without events.
    """

    name: str
    seq: int
    events: tuple[Event, ...]
    baskets: tuple[int, ...]

    @property
    def path(self) -> Path:
        """The committed file."""
        return RAW_FIXTURES_DIR / self.name

    @property
    def run_id(self) -> int:
        return RUN_ID

    @property
    def n_hits(self) -> int:
        return sum(len(event.hits) for event in self.events)

    def run_info(self) -> dict[str, object]:
        """The ``run_info`` JSON of the file."""
        return {
            "run_id": RUN_ID,
            "seq": self.seq,
            "run_type": "physics",
            "detector": "CD",
            "start_time": "2026-11-01T08:00:00",
            "source": None,
            "source_z_mm": None,
            "trigger_rate_hz": 1000.0,
            "software_version": "tests/rawfixtures.py",
        }

    def per_event(self) -> dict[str, np.ndarray]:
        """``event_id``, ``trigger_time``, ``trigger_type`` and ``nhits``, one value per event,
        in the types of the format."""
        columns: dict[str, np.ndarray] = {
            name: np.array([getattr(event, name) for event in self.events], dtype=dtype)
            for name, dtype in rawformat.EVENT_BRANCHES.items()
        }
        columns[rawformat.HIT_COUNTER] = np.array(
            [len(event.hits) for event in self.events], dtype=np.int32
        )
        return columns

    def per_hit(self) -> dict[str, np.ndarray]:
        """``pmt_id``, ``adc`` and ``tdc`` of every hit, event after event (flattened)."""
        return {
            name: np.array(
                [getattr(hit, name) for event in self.events for hit in event.hits], dtype=dtype
            )
            for name, dtype in rawformat.HIT_FIELDS.items()
        }

    def hits_of(self, name: str) -> list[np.ndarray]:
        """One hit field (``pmt_id``, ``adc`` or ``tdc``), one array per event."""
        dtype = rawformat.HIT_FIELDS[name]
        return [
            np.array([getattr(hit, name) for hit in event.hits], dtype=dtype)
            for event in self.events
        ]


#: Five events in two baskets (three events, then two): every trigger type; PMT ids at both ends
#: of the range (0 and 17,611); a negative charge (pedestal subtraction); hit times at both ends
#: of the 1 us window; trigger times beyond 2**32 ns; one PMT hit twice in an event.
FIVE_EVENTS = RawFixture(
    name="five-events.root",
    seq=0,
    events=(
        Event(
            0,
            1_000,
            TRIGGER_GLOBAL,
            (Hit(0, 12.5, 150.0), Hit(17, 3.25, 152.5), Hit(17_611, 40.0, 310.75)),
        ),
        Event(1, 2_500_000, TRIGGER_GLOBAL, (Hit(5, 7.0, 0.0), Hit(6, -1.5, 999.5))),
        Event(
            2,
            2_600_000,
            TRIGGER_LASER,
            (
                Hit(100, 20.0, 200.0),
                Hit(101, 21.0, 201.0),
                Hit(102, 22.0, 202.0),
                Hit(103, 23.0, 203.0),
            ),
        ),
        Event(3, 5_000_000_000, TRIGGER_RANDOM, (Hit(42, 0.5, 512.25),)),
        Event(
            4,
            5_000_001_024,
            TRIGGER_GLOBAL,
            (Hit(9_000, 15.75, 160.0), Hit(9_000, 2.0, 420.0), Hit(17_000, 8.125, 175.5)),
        ),
    ),
    baskets=(3, 2),
)

#: Three events, the middle one without any hit (a random trigger on a quiet detector).
EMPTY_EVENT = RawFixture(
    name="empty-event.root",
    seq=1,
    events=(
        Event(5, 6_000_000_000, TRIGGER_GLOBAL, (Hit(1, 10.0, 100.0), Hit(2, 11.0, 101.0))),
        Event(6, 6_000_500_000, TRIGGER_RANDOM),
        Event(7, 6_001_000_000, TRIGGER_GLOBAL, (Hit(3, 9.5, 99.0),)),
    ),
    baskets=(3,),
)

#: A well-formed raw file without any event (every branch there, no basket).
NO_EVENTS = RawFixture(name="no-events.root", seq=2, events=(), baskets=())

FIXTURES: tuple[RawFixture, ...] = (FIVE_EVENTS, EMPTY_EVENT, NO_EVENTS)


def write_raw_file(fixture: RawFixture, path: Path) -> Path:
    """Write ``fixture`` to ``path`` in the raw format of :mod:`dqm.rawformat`.

    The ``run_info`` string goes first: added after the tree, it would make uproot write the
    streamers (20 kB, uncompressed: most of such a small file) once more at the end of the file.
    """
    assert sum(fixture.baskets) == len(fixture.events), fixture.name
    per_event = fixture.per_event()
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as out:
        out[rawformat.RUN_INFO_KEY] = json.dumps(fixture.run_info(), sort_keys=True)
        out.mktree(rawformat.EVENTS_TREE, {**rawformat.EVENT_BRANCHES, HITS: HITS_TYPE})
        start = 0
        for size in fixture.baskets:
            stop = start + size
            out[rawformat.EVENTS_TREE].extend(
                {
                    **{name: per_event[name][start:stop] for name in rawformat.EVENT_BRANCHES},
                    HITS: _hits(fixture.events[start:stop]),
                }
            )
            start = stop
    return path


def _hits(events: tuple[Event, ...]) -> ak.Array:
    """The hits of ``events`` as a jagged array of records in the format's types; written as the
    counter ``nhits`` and the branches ``hits_pmt_id``, ``hits_adc`` and ``hits_tdc``."""
    counts = np.array([len(event.hits) for event in events], dtype=np.int64)
    flat = {
        name: np.array([getattr(hit, name) for event in events for hit in event.hits], dtype=dtype)
        for name, dtype in rawformat.HIT_FIELDS.items()
    }
    return ak.unflatten(ak.zip(flat), counts)


def main() -> None:
    """Write every fixture into :data:`RAW_FIXTURES_DIR`."""
    RAW_FIXTURES_DIR.mkdir(parents=True, exist_ok=True)
    for fixture in FIXTURES:
        path = write_raw_file(fixture, fixture.path)
        print(
            f"{path.relative_to(ROOT)}: {len(fixture.events)} events, {fixture.n_hits} hits, "
            f"{path.stat().st_size:,} bytes"
        )


if __name__ == "__main__":
    main()
