"""Reading raw files in chunks of events, with deterministic event sampling.

Memory stays bounded by the chunk size whatever the file size. The sampling decision of an event
depends only on its run, file and event id, so re-processing a file (with any chunk size or number
of workers) keeps exactly the same events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from dqm import rawformat
from dqm.errors import DQMError


@dataclass(frozen=True)
class RawFile:
    """A raw file as announced: where it is, whose it is, and what it must be.

    Attributes:
        path: where it is read from.
        run_id: the run it belongs to.
        seq: its sequence number in the run.
        size: the announced size in bytes (None: not checked).
        checksum: the announced adler32, 8 hex digits (None: not checked).
    """

    path: Path
    run_id: int
    seq: int
    size: int | None = None
    checksum: str | None = None


class FileNotReady(DQMError):
    """The file is not (yet) there as announced: missing, or size or checksum differ. Wait and retry."""


def verify_file(path: Path, size: int | None, checksum: str | None) -> None:
    """Check that the file is there with the announced size and adler32.

    Raises:
        FileNotReady: it is not (yet).
    """
    verify_size(path, size)
    if checksum is not None:
        verify_checksum(path, checksum)


def verify_size(path: Path, size: int | None) -> None:
    """Check that the file is there with the announced size.

    Raises:
        FileNotReady: it is not (yet).
    """
    if not path.is_file():
        raise FileNotReady(f"{path} does not exist (yet).")
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise FileNotReady(f"{path} has {actual} bytes, {size} were announced.")


def verify_checksum(path: Path, checksum: str) -> None:
    """Check the file's adler32 against the announced one.

    Raises:
        FileNotReady: it differs (the file is still being written, or was damaged on the way).
    """
    found = rawformat.adler32_file(path)
    if found != checksum:
        raise FileNotReady(f"{path} has adler32 {found}, {checksum} was announced.")


#: Events read per chunk.
STEP_EVENTS = 500

_EVENT_BRANCHES = [
    "event_id",
    "trigger_time",
    "trigger_type",
    rawformat.HIT_COUNTER,
    *rawformat.HIT_BRANCHES,
]


@dataclass
class EventChunk:
    """The sampled events of one chunk, hits flattened.

    Attributes:
        event_id, trigger_time, trigger_type, nhits: per event.
        pmt_id, adc, tdc: per hit, event after event.
        n_read: events read, before sampling.
    """

    event_id: np.ndarray
    trigger_time: np.ndarray
    trigger_type: np.ndarray
    nhits: np.ndarray
    pmt_id: np.ndarray
    adc: np.ndarray
    tdc: np.ndarray
    n_read: int

    @property
    def n_events(self) -> int:
        return len(self.event_id)


def count_events(path: str | Path) -> int:
    """Events in a raw file.

    Raises:
        RawFormatError: not a DQM raw file.
    """
    with uproot.open(path) as file:
        return int(rawformat.check_events_tree(file, path).num_entries)


def sample_mask(run_id: int, seq: int, event_id: np.ndarray, fraction: float) -> np.ndarray:
    """Which events a sampling ``fraction`` keeps: a hash of (run, file, event id), not a random draw."""
    if fraction >= 1.0:
        return np.ones(len(event_id), dtype=bool)
    salt = np.array(
        [(run_id * 0x9E3779B97F4A7C15 + seq * 0xD1B54A32D192ED03) % 2**64], dtype=np.uint64
    )
    with np.errstate(over="ignore"):
        z = event_id.astype(np.uint64) + salt
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53) < fraction


def iterate_events(
    path: str | Path,
    *,
    run_id: int,
    seq: int,
    sampling_fraction: float = 1.0,
    step_events: int = STEP_EVENTS,
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> Iterator[EventChunk]:
    """The events of a raw file (or of its entries ``entry_start`` to ``entry_stop``), chunk by
    chunk, sampled.

    Raises:
        RawFormatError: not a DQM raw file (checked before the first chunk), or unreadable data.
    """
    with uproot.open(path) as file:
        tree = rawformat.check_events_tree(file, path)
        for arrays in tree.iterate(
            _EVENT_BRANCHES,
            step_size=step_events,
            library="ak",
            entry_start=entry_start,
            entry_stop=entry_stop,
        ):
            n_read = len(arrays)
            keep = sample_mask(run_id, seq, ak.to_numpy(arrays["event_id"]), sampling_fraction)
            if not keep.all():
                arrays = arrays[keep]
            yield EventChunk(
                event_id=ak.to_numpy(arrays["event_id"]),
                trigger_time=ak.to_numpy(arrays["trigger_time"]),
                trigger_type=ak.to_numpy(arrays["trigger_type"]),
                nhits=ak.to_numpy(ak.num(arrays["hits_pmt_id"])).astype(np.int64),
                pmt_id=ak.to_numpy(ak.flatten(arrays["hits_pmt_id"])),
                adc=ak.to_numpy(ak.flatten(arrays["hits_adc"])),
                tdc=ak.to_numpy(ak.flatten(arrays["hits_tdc"])),
                n_read=n_read,
            )
