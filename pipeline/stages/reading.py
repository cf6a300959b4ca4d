"""Reading raw files in chunks of events, with deterministic event sampling.

Memory stays bounded by the chunk size whatever the file size. The sampling decision of an event
depends only on its run, file and event id, so re-processing a file (with any chunk size or number
of workers) keeps exactly the same events.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from dqm import rawformat
from dqm.errors import DQMError, first_line


@dataclass(frozen=True)
class RawFile:
    """A raw file as announced: where it is, whose it is, and what it must be.

    Attributes:
        path: where it is read from: a local path, or a ``root://`` URL (a string).
        run_id: the run it belongs to.
        seq: its sequence number in the run.
        size: the announced size in bytes (None: not checked).
        checksum: the announced adler32, 8 hex digits (None: not checked).
    """

    path: rawformat.RawLocation
    run_id: int
    seq: int
    size: int | None = None
    checksum: str | None = None


class FileNotReady(DQMError):
    """The file is not (yet) there as announced: missing, or size or checksum differ, or its server
    does not answer. Wait and retry."""


def verify_file(path: rawformat.RawLocation, size: int | None, checksum: str | None) -> None:
    """Check that the file is there with the announced size and adler32.

    Raises:
        FileNotReady: it is not (yet).
    """
    verify_size(path, size)
    if checksum is not None:
        verify_checksum(path, checksum)


def not_ready(path: rawformat.RawLocation, size: int | None) -> str | None:
    """Why the file cannot be processed yet (missing, another size, its server down), in one
    sentence, or None when it is there with the announced size."""
    try:
        verify_size(path, size)
    except FileNotReady as exc:
        return str(exc)
    except DQMError as exc:  # a refusal for good: the processing will say it too
        return str(exc)
    return None


def verify_size(path: rawformat.RawLocation, size: int | None) -> None:
    """Check that the file is there with the announced size.

    Raises:
        FileNotReady: it is not (yet).
        RemoteError: its XRootD server refuses the request for good.
    """
    if rawformat.is_remote(path):
        from pipeline.stages import remote

        actual = remote.size(str(path))
    else:
        local = Path(path)
        if not local.is_file():
            raise FileNotReady(f"{local} has not arrived (yet).")
        actual = local.stat().st_size
    if size is not None and actual != size:
        raise FileNotReady(f"{path} has {actual} bytes, {size} were announced.")


def verify_checksum(path: rawformat.RawLocation, checksum: str) -> None:
    """Check the file's adler32 against the announced one (a remote file's from its server, or by
    reading it when the server computes none).

    Raises:
        FileNotReady: it differs (the file is still being written, or was damaged on the way).
    """
    if rawformat.is_remote(path):
        from pipeline.stages import remote

        found = remote.checksum(str(path))
        if found is None:
            with tempfile.TemporaryDirectory(prefix="dqm-raw-") as tmp:
                found = remote.copy_with_adler32(str(path), Path(tmp) / "copy.root")
    else:
        found = rawformat.adler32_file(path)
    if found != checksum.lower():
        raise FileNotReady(f"{path} has adler32 {found}, {checksum} was announced.")


@contextmanager
def verified(file: RawFile) -> Iterator[rawformat.RawLocation]:
    """Where to read a raw file from, checked against its announcement without a second read
    through the network: its size first, then its adler32 while the caller reads it.

    - A local file: a thread computes the adler32 alongside (reading through the page cache that
      the caller's reads share; zlib releases the GIL).
    - A ``root://`` file whose server answers adler32 queries: the server's checksum, asked
      alongside; the caller reads the file where it is.
    - A ``root://`` file whose server computes no checksum: the file is copied once, in one
      sequential read that computes its adler32 on the way, to a temporary local file (under
      ``TMPDIR``), which the caller reads and which is removed after.

    A checksum that differs wins over any error of the caller's reading (a file still being
    written explains it); results are not to be kept unless the block ends without error.

    Raises:
        FileNotReady: the file is not there as announced (yet), or its server does not answer.
    """
    verify_size(file.path, file.size)
    if file.checksum is None:
        yield file.path
        return
    if rawformat.is_remote(file.path):
        from pipeline.stages import remote

        url = str(file.path)
        if not remote.serves_adler32(url):
            with tempfile.TemporaryDirectory(prefix="dqm-raw-") as tmp:
                local = Path(tmp) / rawformat.location_name(url)
                found = remote.copy_with_adler32(url, local)
                if found != file.checksum.lower():
                    raise FileNotReady(f"{url} has adler32 {found}, {file.checksum} was announced.")
                yield local
            return
    checking = _Checksum(file.path, file.checksum)
    try:
        yield file.path
    except BaseException:
        checking.join()
        checking.raise_if_failed()
        raise
    checking.join()
    checking.raise_if_failed()


class _Checksum(threading.Thread):
    """Verifies a file's adler32 in the background."""

    def __init__(self, path: rawformat.RawLocation, checksum: str) -> None:
        super().__init__(name="adler32", daemon=True)
        self.path, self.checksum = path, checksum
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            verify_checksum(self.path, self.checksum)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.error = exc

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def unreadable(path: rawformat.RawLocation, exc: BaseException) -> DQMError:
    """The one-sentence error of a file whose reading failed: the server of a remote file that
    went away (wait and retry), or a file that is not readable ROOT."""
    detail = first_line(exc, limit=300)
    if rawformat.is_remote(path) and isinstance(exc, OSError | TimeoutError):
        return FileNotReady(f"reading {path} stopped: {detail}")
    return rawformat.RawFormatError(
        f"{rawformat.location_name(path)} cannot be read as ROOT: {detail}"
    )


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


def count_events(path: rawformat.RawLocation) -> int:
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
    path: rawformat.RawLocation,
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
