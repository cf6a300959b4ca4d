"""Reconstructed events of a file as a compact table: float32 columns, compressed, stored in the
database beside the file's histograms (the web server reads nothing but the database) and drawn by
the dashboard through Datashader.

Columns: ``x_mm``, ``y_mm``, ``z_mm`` (vertex), ``energy_mev`` (visible energy) and ``time_s``
(trigger time). 20,000 events take about 0.33 MB (the floats' low bytes do not compress).

**The run's sample.** A run of an hour has millions of events; the event-level plots need no more
than a sample of them. A run keeps at most ``sample_size`` events (the setting
``DQM_EVENT_SAMPLE``, by default :data:`SAMPLE_EVENTS`): those of the smallest
:func:`sample_keys`, a hash of each event's own values. That is a uniform random sample (a bottom-k
sketch) with one property a reservoir sample lacks: it merges. The sample of a run is the sample of
its files' samples, whatever the order in which they arrive, so each file stores its own sample
(:func:`encode_event_table` with ``sample_size``), a reader merges the files' tables with
:func:`merge_tables`, and the retention policy may cut each file's table down to its part of the
run's sample without changing what any reader gets. The size a table was sampled to is stored in
it, so a reader needs no setting. Analyses that declare ``event_table`` read the same sample: one
that needs the statistics of every event reads a histogram, or a larger sample is set.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dqm.bytegroups import grouped, ungrouped
from dqm.errors import InvalidValueError

COLUMNS = ("x_mm", "y_mm", "z_mm", "energy_mev", "time_s")

#: Events a run keeps for its event-level plots, unless ``DQM_EVENT_SAMPLE`` says otherwise.
SAMPLE_EVENTS = 20_000

#: The bytes that open an encoded table, then one byte of :data:`FORMAT_VERSION`.
MAGIC = b"DQMEVTS"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<Iq")  # events, the size sampled to (-1: every event)
_SAMPLE_SIZE = "sample_size"  # the member of a NumPy archive that held the size sampled to
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class StoredTable:
    """A decoded table: its columns, and the size it was sampled to (None: every event)."""

    columns: dict[str, np.ndarray]
    sample_size: int | None


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: every bit of the input reaches every bit of the output."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def sample_keys(columns: Mapping[str, npt.ArrayLike]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each event's float32 values: the same event has the same key in any table,
    and keys of different events are independent and uniform."""
    n = len(np.asarray(columns[COLUMNS[0]]))
    key = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in COLUMNS:
            bits = np.ascontiguousarray(columns[name], dtype="<f4").view("<u4").astype(np.uint64)
            key = _mix(key + bits + _GOLDEN)
    return key


def sample(columns: Mapping[str, np.ndarray], size: int | None) -> dict[str, np.ndarray]:
    """The ``size`` events of smallest :func:`sample_keys` (all when there are no more), in their
    order in ``columns``."""
    n = len(columns[COLUMNS[0]])
    if size is None or n <= size:
        return {name: np.asarray(columns[name]) for name in COLUMNS}
    if size <= 0:
        return {name: np.asarray(columns[name])[:0] for name in COLUMNS}
    chosen = np.argpartition(sample_keys(columns), size - 1)[:size]
    chosen.sort()
    return {name: np.asarray(columns[name])[chosen] for name in COLUMNS}


def _checked(columns: Mapping[str, np.ndarray]) -> None:
    missing = set(COLUMNS) - set(columns)
    if missing:
        raise InvalidValueError(f"an event table needs the columns {', '.join(sorted(missing))}.")
    lengths = {len(columns[name]) for name in COLUMNS}
    if len(lengths) != 1:
        raise InvalidValueError(f"the columns of an event table differ in length: {lengths}.")


def encode_event_table(
    columns: Mapping[str, np.ndarray], *, sample_size: int | None = None
) -> bytes:
    """The columns (all of :data:`COLUMNS`, of one length) as compressed bytes; with
    ``sample_size``, only that :func:`sample` of them, and the size is kept with them.

    The bytes: :data:`MAGIC`, a version byte, then, zlib compressed, the number of events, the
    sample's size (-1: none) and the float32 columns one after the other, each column's bytes
    grouped by significance (which compresses the exponents, where plain bytes do not)."""
    _checked(columns)
    if sample_size is not None and sample_size < 0:
        raise InvalidValueError(f"an event sample cannot hold {sample_size} events.")
    kept = sample(columns, sample_size)
    n = len(kept[COLUMNS[0]])
    parts = [_HEADER.pack(n, -1 if sample_size is None else sample_size)]
    for name in COLUMNS:
        parts.append(grouped(kept[name], "<f4"))
    return MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(b"".join(parts), 6)


def read_event_table(data: bytes) -> StoredTable:
    """The columns of :func:`encode_event_table`'s bytes and the size they were sampled to
    (tables stored before as NumPy archives read too).

    Raises:
        InvalidValueError: the bytes are not an event table, or a damaged one.
    """
    data = bytes(data)
    if data.startswith(b"PK"):  # a NumPy archive, as stored before
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            columns = {name: archive[name] for name in COLUMNS}
            size = int(archive[_SAMPLE_SIZE]) if _SAMPLE_SIZE in archive.files else None
        return StoredTable(columns, size)
    if not data.startswith(MAGIC) or len(data) <= len(MAGIC):
        raise InvalidValueError("These bytes are not an event table: they lack its header.")
    version = data[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise InvalidValueError(
            f"This event table is in format version {version}, which this version of the DQM "
            f"does not read (it reads version {FORMAT_VERSION})."
        )
    try:
        payload = zlib.decompress(data[len(MAGIC) + 1 :])
        n, stored_size = _HEADER.unpack_from(payload)
        if len(payload) != _HEADER.size + 4 * n * len(COLUMNS):
            raise ValueError("its columns do not have the length it gives")
    except (zlib.error, struct.error, ValueError) as exc:
        raise InvalidValueError(f"This event table is damaged and cannot be read: {exc}.") from None
    columns = {}
    for k, name in enumerate(COLUMNS):
        start = _HEADER.size + 4 * n * k
        columns[name] = ungrouped(payload[start : start + 4 * n], "<f4")
    return StoredTable(columns, None if stored_size < 0 else int(stored_size))


def merge_tables(tables: Iterable[StoredTable]) -> StoredTable:
    """The tables one after the other, sampled to the smallest size any of them was sampled to:
    the run's sample from its files' samples (every event when none was sampled)."""
    tables = list(tables)
    sizes = [t.sample_size for t in tables if t.sample_size is not None]
    size = min(sizes) if sizes else None
    columns = {
        name: np.concatenate([t.columns[name] for t in tables]) if tables else np.zeros(0, "<f4")
        for name in COLUMNS
    }
    return StoredTable(sample(columns, size), size)
