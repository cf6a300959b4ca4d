"""Raw events kept for the event display: of every raw file, its first physics events and those of
highest reconstructed energy, each with its fired PMTs.

The dashboard reads nothing but the database, so the few events a shifter may want to look at are
kept there: the first :data:`KEEP_FIRST` reconstructed physics events of a file (what the detector
looked like when the file began) and its :data:`KEEP_HIGHEST` of highest energy (muons, showers,
anything odd), an event being both when it is both. Each :class:`KeptEvent` holds its fired PMTs
once each, with the PMT's summed charge (PE) and earliest calibrated hit time (ns), its
reconstructed vertex (mm) and energy (MeV), its number of raw hits and its trigger time.

The pipeline works chunk by chunk and range by range: :func:`select_events` takes one chunk's
candidates, and :func:`reduce_events` keeps the file's final set from any collection of candidates.
The reduction is associative (reducing per range and then over the ranges gives what reducing
everything at once gives), since an event among a file's first or highest is always among those of
the part of the file it is in. :func:`encode` and :func:`decode` turn a set into compact versioned
bytes for the database and back, charges to 0.01 PE and times to 0.1 ns (far below a PMT's
resolution), everything else exactly: 20 events of 1,500 to 15,000 fired PMTs take about 0.1 to
0.8 MB (about 3 bytes per fired PMT).

Example::

    candidates = []
    for chunk in chunks:
        # the chunk's hits (PMT ids, calibrated charges and times) and hits per event; the
        # positions in the chunk of its reconstructed physics events, their vertices, energies
        # and trigger times
        candidates += select_events(
            first_entry, pmt_id, pe, time, nhits, physics_index, vertex, energy, trigger_time_s
        )
    kept = reduce_events(candidates)  # the file's events, sorted by entry
    data = encode(kept)  # stored with the file; decode(data, seq=3) gives them back
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dqm.bytegroups import grouped, ungrouped
from dqm.errors import InvalidValueError

__all__ = [
    "FORMAT_VERSION",
    "KEEP_FIRST",
    "KEEP_HIGHEST",
    "REASONS",
    "KeptEvent",
    "could_enter",
    "decode",
    "encode",
    "reduce_events",
    "select_events",
]

#: Physics events kept at the start of each file.
KEEP_FIRST = 10
#: Physics events of highest reconstructed energy kept in each file.
KEEP_HIGHEST = 10
#: Why an event is kept, in the order :attr:`KeptEvent.reasons` gives them.
REASONS = ("first", "highest")

#: The bytes that open an encoded set, then one byte of :data:`FORMAT_VERSION`.
MAGIC = b"DQMKEPT"
#: Version of the encoding :func:`encode` writes; :func:`decode` reads it and version 1 (charges
#: and times as float32).
FORMAT_VERSION = 2
#: The steps charges (PE) and first-hit times (ns) are stored to in version 2: far below a PMT's
#: resolution (about 0.3 PE and 1 ns), and half the bytes of the float32 values.
CHARGE_STEP_PE = 0.01
TIME_STEP_NS = 0.1

#: One row per event in the encoding (little-endian); ``reasons`` is a bit mask over REASONS.
_EVENT_DTYPE = np.dtype(
    [
        ("entry", "<i8"),
        ("trigger_time_s", "<f8"),
        ("energy_mev", "<f8"),
        ("vertex_mm", "<f8", (3,)),
        ("n_hits", "<i8"),
        ("n_pmts", "<u4"),
        ("reasons", "u1"),
    ]
)
_COUNT = struct.Struct("<I")


@dataclass(frozen=True, eq=False)
class KeptEvent:
    """One kept event of a raw file.

    Attributes:
        entry: the event's number in its raw file, which orders "first": the pipeline gives the
            event id the DAQ wrote (a sampled file skips entries), a reader may give the entry.
        trigger_time_s: trigger time, s (the raw file's ``trigger_time`` divided by 1e9).
        energy_mev: reconstructed visible energy, MeV.
        vertex_mm: reconstructed vertex ``(x, y, z)``, mm.
        n_hits: raw hits of the event (a PMT can have several).
        pmt_id: the fired PMTs, each once, in increasing order (int32).
        charge_pe: each fired PMT's summed charge, PE (float32).
        first_hit_ns: each fired PMT's earliest calibrated hit time, ns (float32).
        reasons: why it is kept: ``"first"``, ``"highest"`` or both, in the order of REASONS.
        seq: the sequence number of its raw file in the run, when the reader knows it (None in the
            pipeline, which works on one file).
    """

    entry: int
    trigger_time_s: float
    energy_mev: float
    vertex_mm: tuple[float, float, float]
    n_hits: int
    pmt_id: npt.NDArray[np.int32] = field(repr=False)
    charge_pe: npt.NDArray[np.float32] = field(repr=False)
    first_hit_ns: npt.NDArray[np.float32] = field(repr=False)
    reasons: tuple[str, ...] = ()
    seq: int | None = None

    def __post_init__(self) -> None:
        # Frozen: the normalised values are set through object.__setattr__.
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("entry", int(self.entry))
        put("trigger_time_s", float(self.trigger_time_s))
        put("energy_mev", float(self.energy_mev))
        x, y, z = (float(v) for v in self.vertex_mm)
        put("vertex_mm", (x, y, z))
        put("n_hits", int(self.n_hits))
        put("pmt_id", np.ascontiguousarray(self.pmt_id, dtype=np.int32))
        put("charge_pe", np.ascontiguousarray(self.charge_pe, dtype=np.float32))
        put("first_hit_ns", np.ascontiguousarray(self.first_hit_ns, dtype=np.float32))
        lengths = {self.pmt_id.shape, self.charge_pe.shape, self.first_hit_ns.shape}
        if len(lengths) != 1 or self.pmt_id.ndim != 1:
            raise ValueError(
                f"event {self.entry}: pmt_id, charge_pe and first_hit_ns must be 1-d arrays of "
                f"one length, not of shapes {sorted(lengths)}."
            )
        unknown = set(self.reasons) - set(REASONS)
        if unknown:
            raise ValueError(f"event {self.entry}: unknown reasons {sorted(unknown)}.")
        put("reasons", tuple(r for r in REASONS if r in self.reasons))

    @property
    def n_pmts(self) -> int:
        """Fired PMTs."""
        return int(self.pmt_id.size)


def _entries(entry_offset: int | npt.ArrayLike, n_events: int) -> npt.NDArray[np.int64]:
    """The entry of each event of a chunk: ``entry_offset`` onwards, or as given."""
    if np.ndim(entry_offset) == 0:
        return int(entry_offset) + np.arange(n_events, dtype=np.int64)  # type: ignore[arg-type]
    entries = np.asarray(entry_offset, dtype=np.int64)
    if entries.shape != (n_events,):
        raise ValueError(f"{entries.size} entries given for a chunk of {n_events} events.")
    return entries


def _first(entries: np.ndarray, keep: int) -> np.ndarray:
    """Positions of the ``keep`` smallest entries."""
    return np.argsort(entries, kind="stable")[: max(keep, 0)]


def _highest(energies: np.ndarray, entries: np.ndarray, keep: int) -> np.ndarray:
    """Positions of the ``keep`` highest finite energies, the smaller entry first on a tie."""
    finite = np.flatnonzero(np.isfinite(energies))
    order = np.lexsort((entries[finite], -energies[finite]))
    return finite[order[: max(keep, 0)]]


def select_events(
    entry_offset: int | npt.ArrayLike,
    pmt: npt.ArrayLike,
    pe: npt.ArrayLike,
    time: npt.ArrayLike,
    nhits: npt.ArrayLike,
    physics_index: npt.ArrayLike,
    vertex: npt.ArrayLike,
    energy: npt.ArrayLike,
    trigger_time_s: npt.ArrayLike,
    keep_first: int = KEEP_FIRST,
    keep_highest: int = KEEP_HIGHEST,
) -> list[KeptEvent]:
    """The candidates of one chunk of events: its first ``keep_first`` reconstructed physics events
    and its ``keep_highest`` of highest energy, sorted by entry.

    Each event's hits are collapsed to one per PMT: the charges summed, the earliest time kept.

    Args:
        entry_offset: the entry in the raw file of the chunk's first event, the others following
            it; or, for a chunk whose events are not consecutive (sampled), the entry of each.
        pmt, pe, time: per hit, event after event: PMT id, calibrated charge (PE) and time (ns).
        nhits: hits of each event of the chunk.
        physics_index: the positions in the chunk of the reconstructed physics events.
        vertex: their vertices, ``(len(physics_index), 3)``, mm.
        energy: their energies, MeV (an event whose energy is not finite is never "highest").
        trigger_time_s: their trigger times, s.
        keep_first, keep_highest: how many of each to keep.

    Raises:
        ValueError: arrays of inconsistent lengths.
    """
    counts = np.asarray(nhits, dtype=np.int64)
    pmt_ids = np.asarray(pmt)
    charges = np.asarray(pe)  # converted below, for the chosen events' hits only
    times = np.asarray(time)
    if not pmt_ids.shape == charges.shape == times.shape == (int(counts.sum()),):
        raise ValueError(
            f"pmt, pe and time must hold the {int(counts.sum())} hits of the chunk's events, "
            f"not {pmt_ids.size}, {charges.size} and {times.size}."
        )
    physics = np.asarray(physics_index, dtype=np.int64).reshape(-1)
    vertices = np.asarray(vertex, dtype=np.float64).reshape(-1, 3)
    energies = np.asarray(energy, dtype=np.float64).reshape(-1)
    triggers = np.asarray(trigger_time_s, dtype=np.float64).reshape(-1)
    if not len(physics) == len(vertices) == len(energies) == len(triggers):
        raise ValueError(
            "physics_index, vertex, energy and trigger_time_s must describe the same events, not "
            f"{len(physics)}, {len(vertices)}, {len(energies)} and {len(triggers)}."
        )
    if physics.size and (physics.min() < 0 or physics.max() >= counts.size):
        raise ValueError(f"physics_index must lie in the chunk's {counts.size} events.")
    entries = _entries(entry_offset, counts.size)[physics]

    first = _first(entries, keep_first)
    highest = _highest(energies, entries, keep_highest)
    chosen = np.union1d(first, highest).astype(np.int64)  # positions among the physics events
    if not chosen.size:
        return []
    chosen = chosen[np.argsort(entries[chosen], kind="stable")]

    # The hits of the chosen events, labelled by their rank among them.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    events = physics[chosen]
    lengths = counts[events]
    label = np.repeat(np.arange(events.size), lengths)
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    hits = np.repeat(starts[events], lengths) + within
    # Ordered by event, PMT and time: each (event, PMT) group opens with its earliest hit.
    order = np.lexsort((times[hits], pmt_ids[hits], label))
    hits, label = hits[order], label[order]
    hit_pmt = pmt_ids[hits]
    hit_charge = charges[hits].astype(np.float64)
    opens = np.ones(hits.size, dtype=np.bool_)
    opens[1:] = (label[1:] != label[:-1]) | (hit_pmt[1:] != hit_pmt[:-1])
    group = np.flatnonzero(opens)
    group_pmt = hit_pmt[group].astype(np.int32)
    group_time = times[hits[group]].astype(np.float32)
    summed = np.add.reduceat(hit_charge, group) if group.size else hit_charge
    group_charge = summed.astype(np.float32)
    bounds = np.searchsorted(label[group], np.arange(events.size + 1))

    first_set, highest_set = set(first.tolist()), set(highest.tolist())
    kept = []
    for rank, position in enumerate(chosen.tolist()):
        span = slice(bounds[rank], bounds[rank + 1])
        reasons = ("first",) * (position in first_set) + ("highest",) * (position in highest_set)
        x, y, z = vertices[position]
        kept.append(
            KeptEvent(
                entry=int(entries[position]),
                trigger_time_s=float(triggers[position]),
                energy_mev=float(energies[position]),
                vertex_mm=(float(x), float(y), float(z)),
                n_hits=int(lengths[rank]),
                pmt_id=group_pmt[span],
                charge_pe=group_charge[span],
                first_hit_ns=group_time[span],
                reasons=reasons,
            )
        )
    return kept


def could_enter(
    kept: Sequence[KeptEvent],
    entries: npt.ArrayLike,
    energies: npt.ArrayLike,
    keep_first: int = KEEP_FIRST,
    keep_highest: int = KEEP_HIGHEST,
) -> npt.NDArray[np.bool_]:
    """Which of the events (``entries``, ``energies``) could still enter the set ``kept`` (a
    :func:`reduce_events` result): those among the first while the first are not all found or of
    an entry below the last of them, and those of an energy at least the lowest of the highest
    while those are not all found. The others need not be given to :func:`select_events`, whose
    work grows with its candidates' hits: a file's reading then selects a few events a chunk."""
    entries = np.asarray(entries, dtype=np.int64)
    energies = np.asarray(energies, dtype=np.float64)
    firsts = [e.entry for e in kept if "first" in e.reasons]
    highest = [e.energy_mev for e in kept if "highest" in e.reasons]
    if keep_first <= 0:
        first_ok = np.zeros(entries.shape, dtype=np.bool_)
    elif len(firsts) >= keep_first:
        first_ok = entries < max(firsts)
    else:
        first_ok = np.ones(entries.shape, dtype=np.bool_)
    if keep_highest <= 0:
        highest_ok = np.zeros(energies.shape, dtype=np.bool_)
    elif len(highest) >= keep_highest:
        highest_ok = energies >= min(highest)
    else:
        highest_ok = np.isfinite(energies)
    return np.asarray(first_ok | highest_ok, dtype=np.bool_)


def reduce_events(
    events: Iterable[KeptEvent],
    keep_first: int = KEEP_FIRST,
    keep_highest: int = KEEP_HIGHEST,
) -> list[KeptEvent]:
    """The final set of one file from candidates of its parts (chunks, ranges, earlier reductions):
    the ``keep_first`` of smallest entry and the ``keep_highest`` of highest energy (the smaller
    entry first on a tie), each once, its reasons given again from this choice, sorted by entry.
    Events of several files (``seq`` set) give the run's set the same way, "first" going by file
    and then by entry: the run's first events and its highest.

    Associative: any split of the candidates, reduced part by part and then together, gives the
    same events with the same reasons. An entry of a file given twice is taken to be the same
    event.
    """
    unique: dict[tuple[int, int], KeptEvent] = {}
    for event in events:
        unique.setdefault(_place(event), event)
    places = sorted(unique)
    candidates = [unique[place] for place in places]  # in file and entry order
    if not candidates:
        return []
    order = np.arange(len(candidates), dtype=np.int64)
    energies = np.array([e.energy_mev for e in candidates], dtype=np.float64)
    first = set(_first(order, keep_first).tolist())
    highest = set(_highest(energies, order, keep_highest).tolist())
    kept = []
    for position in sorted(first | highest):
        reasons = ("first",) * (position in first) + ("highest",) * (position in highest)
        event = candidates[position]
        kept.append(event if event.reasons == reasons else replace(event, reasons=reasons))
    return kept


def _place(event: KeptEvent) -> tuple[int, int]:
    """Where an event is in its run: its file (-1 when not known) and its entry."""
    return (-1 if event.seq is None else event.seq, event.entry)


def _steps(values: np.ndarray, step: float) -> np.ndarray:
    """Values as whole numbers of ``step`` (int32; not finite: 0)."""
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float64) / step, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(scaled), -(2**31), 2**31 - 1).astype("<i4")


def encode(events: Sequence[KeptEvent]) -> bytes:
    """The events as compact bytes: :data:`MAGIC`, the :data:`FORMAT_VERSION` byte, then, zlib
    compressed, the count, one row per event and the PMT columns of all events (PMT ids as
    differences from the previous one; charges and times as whole numbers of
    :data:`CHARGE_STEP_PE` and :data:`TIME_STEP_NS`; every column's bytes grouped by
    significance). The file's ``seq`` is not kept: the reader knows which file the bytes belong
    to. Everything else comes back as it was given."""
    table = np.zeros(len(events), dtype=_EVENT_DTYPE)
    table["entry"] = [e.entry for e in events]
    table["trigger_time_s"] = [e.trigger_time_s for e in events]
    table["energy_mev"] = [e.energy_mev for e in events]
    table["vertex_mm"] = [e.vertex_mm for e in events] if events else np.zeros((0, 3))
    table["n_hits"] = [e.n_hits for e in events]
    table["n_pmts"] = [e.n_pmts for e in events]
    table["reasons"] = [sum(1 << REASONS.index(r) for r in e.reasons) for e in events]

    def column(name: str, dtype: str) -> np.ndarray:
        parts = [getattr(e, name) for e in events]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    ids = column("pmt_id", "<i4").view("<u4")
    # Differences modulo 2**32, undone exactly by a cumulative sum modulo 2**32.
    steps = np.diff(ids, prepend=np.zeros(1, "<u4")) if ids.size else ids
    payload = b"".join(
        (
            _COUNT.pack(len(events)),
            table.tobytes(),
            grouped(steps, "<u4"),
            grouped(_steps(column("charge_pe", "<f4"), CHARGE_STEP_PE), "<i4"),
            grouped(_steps(column("first_hit_ns", "<f4"), TIME_STEP_NS), "<i4"),
        )
    )
    return MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(payload, 6)


def decode(data: bytes, *, seq: int | None = None) -> list[KeptEvent]:
    """The events of :func:`encode`'s bytes, each given the file's ``seq``.

    Raises:
        InvalidValueError: the bytes are not kept events of a version this code reads.
    """
    data = bytes(data)
    header = len(MAGIC) + 1
    if len(data) < header or not data.startswith(MAGIC):
        raise InvalidValueError("These bytes are not kept events: they lack the format's header.")
    version = data[len(MAGIC)]
    if version not in (1, FORMAT_VERSION):
        raise InvalidValueError(
            f"These kept events are in format version {version}, which this version of the DQM "
            f"does not read (it reads versions 1 to {FORMAT_VERSION})."
        )
    try:
        payload = zlib.decompress(data[header:])
        (count,) = _COUNT.unpack_from(payload)
        offset = _COUNT.size
        table = np.frombuffer(payload, _EVENT_DTYPE, count, offset)
        offset += table.nbytes
        n_pmts = int(table["n_pmts"].sum())
        if len(payload) != offset + 12 * n_pmts:
            raise ValueError("the PMT columns do not have the length the events give")
        columns = [
            payload[offset + 4 * n_pmts * k : offset + 4 * n_pmts * (k + 1)] for k in range(3)
        ]
        ids = np.cumsum(ungrouped(columns[0], "<u4"), dtype="<u4").view("<i4")
        if version == 1:
            charge = ungrouped(columns[1], "<f4")
            first_hit = ungrouped(columns[2], "<f4")
        else:
            charge = (ungrouped(columns[1], "<i4") * CHARGE_STEP_PE).astype("<f4")
            first_hit = (ungrouped(columns[2], "<i4") * TIME_STEP_NS).astype("<f4")
    except (zlib.error, struct.error, ValueError) as exc:
        raise InvalidValueError(
            f"These kept events are damaged and cannot be read: {exc}."
        ) from None
    bounds = np.concatenate(([0], np.cumsum(table["n_pmts"], dtype=np.int64)))
    events = []
    for k, row in enumerate(table):
        span = slice(int(bounds[k]), int(bounds[k + 1]))
        x, y, z = (float(v) for v in row["vertex_mm"])
        events.append(
            KeptEvent(
                entry=int(row["entry"]),
                trigger_time_s=float(row["trigger_time_s"]),
                energy_mev=float(row["energy_mev"]),
                vertex_mm=(x, y, z),
                n_hits=int(row["n_hits"]),
                pmt_id=ids[span],
                charge_pe=charge[span],
                first_hit_ns=first_hit[span],
                reasons=tuple(r for i, r in enumerate(REASONS) if int(row["reasons"]) >> i & 1),
                seq=seq,
            )
        )
    return events
