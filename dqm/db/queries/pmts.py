"""The PMT status of every run, one PMT's history over runs, and the versions of the PMT mask.

A PMT's history reads one row a run: the block of :data:`dqm.pmtstatus.BLOCK_PMTS` PMTs it
belongs to (4 kB: their statuses, hit rates, dark rates and charges per signal hit), never the
run's arrays, so that searching a PMT over a year of runs moves megabytes, not gigabytes, on any
database. The calibrated gain comes from the calibrations (8 bytes of each version's gains).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.orm import Session

from dqm import pmtstatus
from dqm.db.models import Calibration, PmtBlock, PmtMask, PmtStatus, Run
from dqm.db.queries.changes import record_change
from dqm.errors import InvalidValueError, NotFoundError
from dqm.pmtclass import HitRateCuts
from dqm.times import utcnow

__all__ = [
    "PmtHistoryRow",
    "add_pmt_mask",
    "derive_pmt_mask",
    "edit_pmt_mask",
    "first_dead_run",
    "get_pmt_mask",
    "list_pmt_masks",
    "mask_summary",
    "pmt_changes",
    "pmt_history",
    "pmt_mask_for_run",
    "pmt_status",
    "previous_pmt_status",
    "recent_pmt_statuses",
    "save_pmt_status",
]


def save_pmt_status(
    session: Session,
    *,
    run_id: int,
    run_type: str,
    codes: np.ndarray,
    cuts: HitRateCuts,
    n_events: int,
    values: np.ndarray | None = None,
) -> PmtStatus:
    """Store (or replace) the status of a run's PMTs, and by blocks with ``values``
    (:func:`dqm.pmtstatus.history_values`; None: NaN) for the PMTs' histories."""
    row = session.get(PmtStatus, run_id)
    if row is None:
        row = PmtStatus(run_id=run_id)
        session.add(row)
    codes = np.asarray(codes)
    if values is None:
        values = np.full((len(pmtstatus.BLOCK_VALUES), codes.size), np.nan, dtype=np.float32)
    row.run_type = run_type
    row.n_pmts = int(codes.size)
    row.codes = pmtstatus.encode_codes(codes)
    row.n_dead = int(np.count_nonzero(codes == pmtstatus.S_DEAD))
    row.n_hot = int(np.count_nonzero(codes == pmtstatus.S_HOT))
    row.n_noisy = int(np.count_nonzero(codes == pmtstatus.S_NOISY))
    row.cuts = {
        "dead_cut": cuts.dead_cut,
        "hot_cut": cuts.hot_cut,
        "normal_band": list(cuts.normal_band),
    }
    row.rules_version = pmtstatus.STATUS_VERSION
    row.n_events = int(n_events)
    row.updated_at = utcnow()
    session.flush()
    session.execute(delete(PmtBlock).where(PmtBlock.run_id == run_id))
    session.execute(
        insert(PmtBlock),
        [
            {"run_id": run_id, "block": block, "codes": block_codes, "values": block_values}
            for block, block_codes, block_values in pmtstatus.blocks(codes, values)
        ],
    )
    return row


def pmt_status(session: Session, *, run_id: int) -> PmtStatus | None:
    """The stored PMT status of a run, if any."""
    return session.get(PmtStatus, run_id)


def previous_pmt_status(session: Session, *, run_id: int, run_type: str) -> PmtStatus | None:
    """The PMT status of the latest earlier run of ``run_type`` that has one."""
    return session.scalar(
        select(PmtStatus)
        .where(PmtStatus.run_type == run_type, PmtStatus.run_id < run_id)
        .order_by(PmtStatus.run_id.desc())
        .limit(1)
    )


def recent_pmt_statuses(
    session: Session, *, run_type: str, until_run: int, limit: int
) -> list[PmtStatus]:
    """The PMT statuses of the ``limit`` latest runs of ``run_type`` up to ``until_run``
    (included), newest first."""
    return list(
        session.scalars(
            select(PmtStatus)
            .where(PmtStatus.run_type == run_type, PmtStatus.run_id <= until_run)
            .order_by(PmtStatus.run_id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class PmtHistoryRow:
    """One PMT in one run (quantities None where the run has no statistics or status)."""

    run_id: int
    run_type: str
    start_time: dt.datetime | None
    n_events: int
    hit_rate: float | None
    dark_rate_hz: float | None
    signal_charge_pe: float | None  # mean charge of its single-PE signal hits: its relative gain
    status: str | None
    calibration_version: int | None
    gain_adc_per_pe: float | None


def _float_at(column: Any, pmt_id: int, label: str) -> Any:
    return func.substr(column, 8 * pmt_id + 1, 8).label(label)


def _as_float(blob: bytes | None) -> float | None:
    if blob is None or len(blob) != 8:
        return None
    return float(np.frombuffer(blob, dtype="<f8")[0])


def pmt_history(
    session: Session, *, pmt_id: int, run_type: str | None = None, limit: int | None = 500
) -> list[PmtHistoryRow]:
    """One PMT's status, hit rate, dark rate, relative gain and calibrated gain in each run (the
    ``limit`` latest runs with a PMT status, of ``run_type`` if given), oldest first: one row of
    its block a run.

    Raises:
        InvalidValueError: no such PMT.
    """
    if pmt_id < 0:
        raise InvalidValueError(f"there is no PMT {pmt_id}: PMT ids are 0 or more.")
    query = (
        select(
            Run.run_id,
            Run.run_type,
            Run.start_time,
            PmtStatus.n_events,
            PmtStatus.n_pmts,
            PmtBlock.codes,
            PmtBlock.values,
        )
        .join(PmtStatus, PmtStatus.run_id == Run.run_id)
        .join(
            PmtBlock,
            and_(
                PmtBlock.run_id == Run.run_id,
                PmtBlock.block == pmt_id // pmtstatus.BLOCK_PMTS,
            ),
        )
        .order_by(Run.run_id.desc())
    )
    if run_type is not None:
        query = query.where(Run.run_type == run_type)
    if limit is not None:
        query = query.limit(limit)
    rows = list(session.execute(query))
    if not rows:
        largest = session.scalar(select(func.max(PmtStatus.n_pmts)))
        if largest is not None and pmt_id >= largest:
            raise InvalidValueError(
                f"there is no PMT {pmt_id}: the runs have PMTs 0 to {largest - 1}."
            )
    calibrations = _calibration_gains(session, pmt_id)
    history = []
    for row in reversed(rows):
        if pmt_id >= row.n_pmts:
            raise InvalidValueError(
                f"there is no PMT {pmt_id}: run {row.run_id} has PMTs 0 to {row.n_pmts - 1}."
            )
        code, (hit_rate, dark_rate, signal_charge) = pmtstatus.read_block(
            row.codes, row.values, pmt_id
        )
        version, gain = _valid_calibration(calibrations, row.run_id)
        history.append(
            PmtHistoryRow(
                run_id=row.run_id,
                run_type=row.run_type,
                start_time=row.start_time,
                n_events=int(row.n_events),
                hit_rate=hit_rate,
                dark_rate_hz=dark_rate,
                signal_charge_pe=signal_charge,
                status=pmtstatus.STATUS_CLASSES[code]
                if code < len(pmtstatus.STATUS_CLASSES)
                else None,
                calibration_version=version,
                gain_adc_per_pe=gain,
            )
        )
    return history


def _calibration_gains(
    session: Session, pmt_id: int
) -> list[tuple[int, int, int | None, float | None]]:
    """(version, valid from, valid to, this PMT's gain) of every calibration, newest first."""
    rows = session.execute(
        select(
            Calibration.version,
            Calibration.valid_from_run,
            Calibration.valid_to_run,
            _float_at(Calibration.gains, pmt_id, "gain"),
        ).order_by(Calibration.version.desc())
    )
    return [(r.version, r.valid_from_run, r.valid_to_run, _as_float(r.gain)) for r in rows]


def _valid_calibration(
    calibrations: list[tuple[int, int, int | None, float | None]], run_id: int
) -> tuple[int | None, float | None]:
    # the rule of queries.calibration_for_run: the newest version whose range holds the run
    for version, valid_from, valid_to, gain in calibrations:
        if valid_from <= run_id and (valid_to is None or valid_to >= run_id):
            return version, gain
    return None, None


def first_dead_run(session: Session, *, pmt_id: int) -> int | None:
    """The first run in which the PMT was dead, if any."""
    offset = pmt_id % pmtstatus.BLOCK_PMTS
    return session.scalar(
        select(func.min(PmtBlock.run_id)).where(
            PmtBlock.block == pmt_id // pmtstatus.BLOCK_PMTS,
            func.substr(PmtBlock.codes, offset + 1, 1) == bytes([pmtstatus.S_DEAD]),
        )
    )


# --- masks -------------------------------------------------------------------------------------


def add_pmt_mask(
    session: Session,
    *,
    valid_from_run: int,
    pmts: np.ndarray,
    origin: dict[str, Any],
    user: str,
    comment: str = "",
) -> PmtMask:
    """Store a new version of the PMT mask, valid from ``valid_from_run`` on.

    Raises:
        InvalidValueError: a negative run.
    """
    if valid_from_run < 0:
        raise InvalidValueError(
            f"a mask is valid from a run number of 0 or more, not {valid_from_run}."
        )
    latest = session.scalar(select(func.max(PmtMask.version))) or 0
    ids = np.unique(np.asarray(pmts, dtype=np.int64))
    mask = PmtMask(
        version=latest + 1,
        valid_from_run=valid_from_run,
        n_masked=int(ids.size),
        pmts=pmtstatus.encode_ids(ids),
        origin=origin,
        created_by=user[:64],
        created_at=utcnow(),
        comment=comment,
    )
    session.add(mask)
    session.flush()
    return mask


def pmt_mask_for_run(session: Session, *, run_id: int) -> PmtMask | None:
    """The mask valid for a run: the newest version valid from this run or an earlier one (the
    rule of the calibrations: a newer version replaces the older ones from its run on)."""
    return session.scalar(
        select(PmtMask)
        .where(PmtMask.valid_from_run <= run_id)
        .order_by(PmtMask.version.desc())
        .limit(1)
    )


def get_pmt_mask(session: Session, *, version: int) -> PmtMask:
    """A version of the mask.

    Raises:
        NotFoundError: no such version.
    """
    mask = session.get(PmtMask, version)
    if mask is None:
        raise NotFoundError(f"there is no PMT mask version {version}.")
    return mask


def list_pmt_masks(session: Session) -> list[PmtMask]:
    """Every version of the mask, oldest first."""
    return list(session.scalars(select(PmtMask).order_by(PmtMask.version)))


def derive_pmt_mask(
    session: Session,
    *,
    run_type: str,
    until_run: int,
    consecutive: int,
    user: str,
    valid_from_run: int | None = None,
    comment: str = "",
) -> PmtMask:
    """A new mask version from the history: the PMTs dead in each of the ``consecutive`` latest
    runs of ``run_type`` (with a PMT status) up to ``until_run``; valid from ``valid_from_run``
    (default: the run after ``until_run``). Recorded as a change by ``user``.

    Raises:
        InvalidValueError: fewer runs than ``consecutive`` have a status; ``consecutive`` < 1.
    """
    if consecutive < 1:
        raise InvalidValueError(f"a mask needs 1 run or more to derive from, not {consecutive}.")
    statuses = recent_pmt_statuses(
        session, run_type=run_type, until_run=until_run, limit=consecutive
    )
    if len(statuses) < consecutive:
        raise InvalidValueError(
            f"{len(statuses)} {run_type} run(s) up to run {until_run} have a PMT status; "
            f"a mask from {consecutive} consecutive runs needs {consecutive}."
        )
    ids = pmtstatus.dead_in_all([pmtstatus.decode_codes(s.codes) for s in statuses])
    runs = sorted(s.run_id for s in statuses)
    mask = add_pmt_mask(
        session,
        valid_from_run=until_run + 1 if valid_from_run is None else valid_from_run,
        pmts=ids,
        origin={
            "kind": "derived",
            "run_type": run_type,
            "consecutive": consecutive,
            "runs": runs,
        },
        user=user,
        comment=comment,
    )
    _record(session, user, mask, "derived")
    return mask


def edit_pmt_mask(
    session: Session,
    *,
    valid_from_run: int,
    user: str,
    add: np.ndarray | None = None,
    remove: np.ndarray | None = None,
    base_version: int | None = None,
    comment: str = "",
) -> PmtMask:
    """A new mask version by hand: a base version (default: the one valid for
    ``valid_from_run``, or none) with PMTs added and removed, valid from ``valid_from_run``.
    Recorded as a change by ``user``.

    Raises:
        InvalidValueError: the new version would be the same as its base, from the same run.
        NotFoundError: no such base version.
    """
    base = (
        get_pmt_mask(session, version=base_version)
        if base_version is not None
        else pmt_mask_for_run(session, run_id=valid_from_run)
    )
    before = pmtstatus.decode_ids(base.pmts) if base is not None else np.zeros(0, np.int64)
    added = np.asarray(add if add is not None else [], dtype=np.int64)
    removed = np.asarray(remove if remove is not None else [], dtype=np.int64)
    ids = np.setdiff1d(np.union1d(before, added), removed)
    if base is None and not ids.size:
        raise InvalidValueError(
            f"the mask would not change: no mask is valid for run {valid_from_run}, and no PMT "
            "is added."
        )
    if base is not None and base.valid_from_run == valid_from_run and np.array_equal(ids, before):
        raise InvalidValueError(
            f"the mask would not change: version {base.version} already masks these PMTs from "
            f"run {valid_from_run} on."
        )
    mask = add_pmt_mask(
        session,
        valid_from_run=valid_from_run,
        pmts=ids,
        origin={
            "kind": "edited",
            "base_version": base.version if base is not None else None,
            "added": np.setdiff1d(ids, before).tolist(),
            "removed": np.setdiff1d(before, ids).tolist(),
        },
        user=user,
        comment=comment,
    )
    _record(session, user, mask, "edited")
    return mask


def _record(session: Session, user: str, mask: PmtMask, how: str) -> None:
    record_change(
        session,
        user=user,
        action="pmt_mask",
        target=f"mask {mask.version}",
        detail={
            "how": how,
            "valid_from_run": mask.valid_from_run,
            "n_masked": mask.n_masked,
            "comment": mask.comment,
        },
    )


def pmt_changes(
    session: Session, *, run_id: int
) -> tuple[PmtStatus, PmtStatus | None, pmtstatus.PmtChanges | None] | None:
    """A run's PMT status, the previous run of its type's, and what changed between them (None
    for the last two when there is no previous run); None when the run has no status yet."""
    current = pmt_status(session, run_id=run_id)
    if current is None:
        return None
    previous = previous_pmt_status(session, run_id=run_id, run_type=current.run_type)
    if previous is None:
        return current, None, None
    return (
        current,
        previous,
        pmtstatus.changes_between(
            pmtstatus.decode_codes(previous.codes), pmtstatus.decode_codes(current.codes)
        ),
    )


def mask_summary(mask: PmtMask) -> dict[str, Any]:
    """A mask version as plain values: version, valid_from_run, n_masked, how (in words),
    created_by, created_at, comment (what the command line and the dashboard show)."""
    return {
        "version": mask.version,
        "valid_from_run": mask.valid_from_run,
        "n_masked": mask.n_masked,
        "how": pmtstatus.describe_origin(dict(mask.origin or {})),
        "created_by": mask.created_by,
        "created_at": mask.created_at,
        "comment": mask.comment,
    }
