"""The status of every large PMT in every run, and the masks that reconstruction leaves out.

**Status.** When a run's PMT statistics are merged, the job server stores one byte a PMT: its class
among :data:`STATUS_CLASSES` — dead, hot, noisy, normal or other. Dead, hot, normal and other are
:func:`dqm.pmtclass.classify`'s classes under the run type's saved cuts (the built-in ones when none
are saved); **noisy** is :func:`dqm.pmtclass.noisy`'s flag, which wins over normal and other (a dead or
hot PMT is never noisy). One byte a PMT, uncompressed, so that the database can hand out one PMT's
status for the changes between runs: 17.6 kB a run, 26 MB for a year of 1,500 runs. The same
codes are kept by blocks of :data:`BLOCK_PMTS` PMTs with each PMT's hit rate, dark rate and charge
per signal hit (:func:`history_values`, :func:`blocks`), so that one PMT's history reads one
4-kB row a run (:func:`dqm.db.queries.pmt_history`).

**Changes.** :func:`changes_between` compares two runs' statuses: the PMTs newly dead, hot or noisy,
and those recovered (dead, hot or noisy before, normal now).

**Masks.** A mask lists the PMTs that reconstruction must leave out; a version is valid from a run
on, like the calibrations. :func:`dead_in_all` derives one from the history (dead in the last N
runs); an expert can also write one by hand (:func:`parse_pmt_ids` reads ``17, 4242, 100-120``).

Numpy only: the job server, the dashboard and the command line share these rules.

Example::

    codes = status_codes(classify(hit_rate, cuts), noisy_flags)
    changes = changes_between(previous_codes, codes)
    changes.newly_dead, changes.recovered
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dqm import detector, pmtstats
from dqm.errors import InvalidValueError
from dqm.pmtclass import DEAD, HOT, NORMAL, OTHER, HitRateCuts, PmtClassification, classify, noisy

__all__ = [
    "BLOCK_PMTS",
    "BLOCK_VALUES",
    "STATUS_CLASSES",
    "STATUS_VERSION",
    "S_DEAD",
    "S_HOT",
    "S_NOISY",
    "S_NORMAL",
    "S_OTHER",
    "PmtChanges",
    "blocks",
    "changes_between",
    "dead_in_all",
    "decode_codes",
    "decode_ids",
    "describe_origin",
    "encode_codes",
    "encode_ids",
    "format_pmt_ids",
    "history_values",
    "parse_pmt_id",
    "parse_pmt_ids",
    "read_block",
    "status_codes",
    "status_from_sums",
]

#: The statuses of a PMT in a run, by code (the byte stored for it).
STATUS_CLASSES = ("dead", "hot", "noisy", "normal", "other")
S_DEAD, S_HOT, S_NOISY, S_NORMAL, S_OTHER = range(len(STATUS_CLASSES))
#: The version of these rules, stored with every status (a change of the rules bumps it).
STATUS_VERSION = 1

#: dqm.pmtclass class index → status code.
_FROM_CLASS = np.zeros(4, dtype=np.uint8)
_FROM_CLASS[DEAD], _FROM_CLASS[HOT] = S_DEAD, S_HOT
_FROM_CLASS[NORMAL], _FROM_CLASS[OTHER] = S_NORMAL, S_OTHER


def status_codes(classes: PmtClassification, noisy: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The status code of every PMT: its class by hit rate, noisy winning over normal and other.

    Args:
        classes: the classes by hit rate (:func:`dqm.pmtclass.classify`).
        noisy: one boolean a PMT (:func:`dqm.pmtclass.noisy`).
    """
    codes = _FROM_CLASS[classes.pmt_class]
    flag = np.asarray(noisy, dtype=bool) & ((codes == S_NORMAL) | (codes == S_OTHER))
    codes[flag] = S_NOISY
    return codes


def encode_codes(codes: npt.ArrayLike) -> bytes:
    """Status codes as stored: one byte a PMT, in PMT id order."""
    array = np.asarray(codes)
    if array.size and (array.min() < 0 or array.max() >= len(STATUS_CLASSES)):
        raise InvalidValueError("a PMT status code is outside 0..4.")
    return array.astype(np.uint8).tobytes()


def decode_codes(blob: bytes) -> npt.NDArray[np.uint8]:
    """The inverse of :func:`encode_codes` (a new, writable array)."""
    return np.frombuffer(blob, dtype=np.uint8).copy()


def encode_ids(ids: npt.ArrayLike) -> bytes:
    """PMT ids as stored in a mask: sorted, unique, little-endian int32."""
    return np.unique(np.asarray(ids, dtype=np.int64)).astype("<i4").tobytes()


def decode_ids(blob: bytes) -> npt.NDArray[np.int64]:
    """The inverse of :func:`encode_ids`."""
    return np.frombuffer(blob, dtype="<i4").astype(np.int64)


@dataclass(frozen=True, eq=False)
class PmtChanges:
    """What changed between a run and the previous one of its type: PMT ids, ascending.

    Attributes:
        newly_dead, newly_hot, newly_noisy: dead, hot or noisy now, not so before.
        recovered: dead, hot or noisy before, normal now.
    """

    newly_dead: npt.NDArray[np.int64]
    newly_hot: npt.NDArray[np.int64]
    newly_noisy: npt.NDArray[np.int64]
    recovered: npt.NDArray[np.int64]

    def counts(self) -> dict[str, int]:
        """How many PMTs of each change."""
        return {
            "newly dead": len(self.newly_dead),
            "newly hot": len(self.newly_hot),
            "newly noisy": len(self.newly_noisy),
            "recovered": len(self.recovered),
        }

    @property
    def empty(self) -> bool:
        return not any(self.counts().values())

    def rows(self) -> list[tuple[str, int]]:
        """(change, PMT id) for every PMT that changed, change by change."""
        return [
            (change, int(pmt))
            for change, ids in (
                ("newly dead", self.newly_dead),
                ("newly hot", self.newly_hot),
                ("newly noisy", self.newly_noisy),
                ("recovered", self.recovered),
            )
            for pmt in ids
        ]


def changes_between(previous: npt.ArrayLike, current: npt.ArrayLike) -> PmtChanges:
    """The PMTs whose status changed from ``previous`` to ``current`` (status codes).

    Raises:
        InvalidValueError: the two runs do not have the same number of PMTs.
    """
    before, now = np.asarray(previous), np.asarray(current)
    if before.shape != now.shape:
        raise InvalidValueError(
            f"the two runs' statuses cover {before.size} and {now.size} PMTs: they cannot be "
            "compared."
        )
    bad_before = (before == S_DEAD) | (before == S_HOT) | (before == S_NOISY)

    def became(code: int) -> npt.NDArray[np.int64]:
        return np.flatnonzero((now == code) & (before != code)).astype(np.int64)

    return PmtChanges(
        newly_dead=became(S_DEAD),
        newly_hot=became(S_HOT),
        newly_noisy=became(S_NOISY),
        recovered=np.flatnonzero(bad_before & (now == S_NORMAL)).astype(np.int64),
    )


def dead_in_all(statuses: Sequence[npt.ArrayLike]) -> npt.NDArray[np.int64]:
    """The PMTs dead in every one of ``statuses`` (status codes of consecutive runs).

    Raises:
        InvalidValueError: no runs, or runs of different sizes.
    """
    if not statuses:
        raise InvalidValueError("no run has a PMT status to derive a mask from.")
    arrays = [np.asarray(s) for s in statuses]
    if len({a.shape for a in arrays}) != 1:
        raise InvalidValueError("the runs' PMT statuses cover different numbers of PMTs.")
    dead = np.logical_and.reduce([a == S_DEAD for a in arrays])
    return np.flatnonzero(dead).astype(np.int64)


def parse_pmt_id(text: str | int, n_pmts: int = detector.N_PMTS) -> int:
    """A PMT id from a form or the command line.

    Raises:
        InvalidValueError: not a whole number, or not one of the detector's PMTs.
    """
    value = str(text).strip()
    if not re.fullmatch(r"\d+", value):
        raise InvalidValueError(
            f"a PMT id is a whole number from 0 to {n_pmts - 1}, not {value!r}."
        )
    pmt = int(value)
    if pmt >= n_pmts:
        raise InvalidValueError(f"there is no PMT {pmt}: the ids run from 0 to {n_pmts - 1}.")
    return pmt


def parse_pmt_ids(text: str, n_pmts: int = detector.N_PMTS) -> npt.NDArray[np.int64]:
    """PMT ids written as ``17, 4242 100-120`` (commas or spaces, inclusive ranges), sorted and
    unique.

    Raises:
        InvalidValueError: an item that is not an id or a range, a range running backwards, an id
            outside the detector's.
    """
    ids: list[int] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if match is None:
            raise InvalidValueError(
                f"PMTs are given as ids and ranges like 17, 4242, 100-120, not {item!r}."
            )
        low = parse_pmt_id(match[1], n_pmts)
        high = parse_pmt_id(match[2], n_pmts) if match[2] is not None else low
        if high < low:
            raise InvalidValueError(f"the range {item} runs backwards.")
        ids.extend(range(low, high + 1))
    return np.unique(np.asarray(ids, dtype=np.int64))


def format_pmt_ids(ids: Iterable[int], limit: int | None = None) -> str:
    """PMT ids as ``1-5, 17, 4242``: consecutive ids as ranges; ``limit`` items at most, then
    "and N more"."""
    values = sorted({int(i) for i in ids})
    items: list[str] = []
    start = previous = None
    for value in [*values, None]:
        if start is not None and (value is None or value != previous + 1):  # type: ignore[operator]
            items.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if value is not None and start is None:
            start = value
        previous = value
    if limit is not None and len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    return ", ".join(items)


def status_from_sums(
    sums: Mapping[str, npt.ArrayLike], n_events: int, livetime_ns: float, cuts: HitRateCuts
) -> npt.NDArray[np.uint8]:
    """The status of every PMT of a run from its per-PMT sums (:data:`dqm.pmtstats.PMT_ARRAYS`),
    under the run type's cuts."""
    classes = classify(pmtstats.hit_rate(np.asarray(sums["fired_events"]), n_events), cuts)
    flags = noisy(sums["dark_count"], livetime_ns, detector.nominal_dark_rate_hz(), classes=classes)
    return status_codes(classes, flags)


def describe_origin(origin: Mapping[str, object]) -> str:
    """How a mask version was made, in words (its ``origin`` as stored)."""
    if origin.get("kind") == "derived":
        runs = origin.get("runs")
        listed = format_pmt_ids(runs, 5) if isinstance(runs, list) else "?"
        return (
            f"dead in each of {origin.get('consecutive')} {origin.get('run_type')} runs ({listed})"
        )
    base = origin.get("base_version")
    return f"edited from version {base}" if base else "written by hand"


#: PMTs a block: one PMT's history reads its block of each run (4 kB), not the run's arrays.
BLOCK_PMTS = 256
#: The values kept with the status, PMT by PMT, for the history (float32; NaN: not measured).
BLOCK_VALUES = ("hit_rate", "dark_rate_hz", "signal_charge_pe")


def history_values(
    sums: Mapping[str, npt.ArrayLike], n_events: int, livetime_ns: float
) -> npt.NDArray[np.float32]:
    """The :data:`BLOCK_VALUES` of every PMT of a run, (3, n) float32: the fraction of events
    with a hit, the dark rate (Hz), and the mean charge of the signal hits of central low-energy
    events (PE: the PMT's gain relative to its calibration)."""
    fired = np.asarray(sums["fired_events"], dtype=np.float64)
    dark = np.asarray(sums["dark_count"], dtype=np.float64)
    zeros = np.zeros_like(fired)
    hits = np.asarray(sums.get("signal_hits", zeros), dtype=np.float64)
    charge = np.asarray(sums.get("signal_charge_sum", zeros), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        signal = np.where(hits > 0, charge / np.where(hits > 0, hits, 1.0), np.nan)
    return np.stack(
        [
            pmtstats.hit_rate(fired, n_events),
            pmtstats.dark_rate_hz(dark, livetime_ns),
            signal,
        ]
    ).astype(np.float32)


def blocks(codes: npt.ArrayLike, values: npt.ArrayLike) -> list[tuple[int, bytes, bytes]]:
    """A run's statuses and :func:`history_values` as stored by block: (block, codes, values)."""
    codes_array, values_array = np.asarray(codes, dtype=np.uint8), np.asarray(values, "<f4")
    return [
        (
            start // BLOCK_PMTS,
            codes_array[start : start + BLOCK_PMTS].tobytes(),
            np.ascontiguousarray(values_array[:, start : start + BLOCK_PMTS]).tobytes(),
        )
        for start in range(0, len(codes_array), BLOCK_PMTS)
    ]


def read_block(codes: bytes, values: bytes, pmt_id: int) -> tuple[int, list[float | None]]:
    """One PMT's status code and :data:`BLOCK_VALUES` (None: not measured) from its block."""
    offset = pmt_id % BLOCK_PMTS
    array = np.frombuffer(values, dtype="<f4").reshape(len(BLOCK_VALUES), len(codes))
    return codes[offset], [
        None if not np.isfinite(v) else float(v) for v in array[:, offset].tolist()
    ]
