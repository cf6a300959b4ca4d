"""Calibrations: versions of PMT gains and time offsets, each valid from a run on."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dqm.db.models import (
    Calibration,
)
from dqm.errors import InvalidValueError, NotFoundError
from dqm.histcodec import array_to_bytes

#: Run attributes that ``update_run`` may change.


def add_calibration(
    session: Session,
    *,
    valid_from_run: int,
    gains: np.ndarray,
    time_offsets: np.ndarray,
    pmt_status: np.ndarray,
    source_run: int | None = None,
    created_by: str | None = None,
    comment: str | None = None,
) -> Calibration:
    """Store a new version of the per-PMT constants, valid from run ``valid_from_run`` on.

    The version number is one more than the highest so far.
    """
    if not len(gains) == len(time_offsets) == len(pmt_status):
        raise InvalidValueError("calibration arrays differ in length.")
    version = (session.scalar(select(func.max(Calibration.version))) or 0) + 1
    calibration = Calibration(
        version=version,
        valid_from_run=valid_from_run,
        source_run=source_run,
        n_pmts=len(gains),
        gains=array_to_bytes(gains),
        time_offsets=array_to_bytes(time_offsets),
        pmt_status=array_to_bytes(pmt_status),
        created_by=created_by,
        comment=comment,
    )
    session.add(calibration)
    session.flush()
    return calibration


def first_calibration(session: Session) -> Calibration | None:
    """The calibration valid from the earliest run (None: no calibration is stored)."""
    return session.scalar(
        select(Calibration).order_by(Calibration.valid_from_run, Calibration.version).limit(1)
    )


def calibration_for_run(session: Session, *, run_id: int) -> Calibration | None:
    """The calibration valid for ``run_id``: the newest version whose validity range contains it."""
    return session.scalar(
        select(Calibration)
        .where(
            Calibration.valid_from_run <= run_id,
            or_(Calibration.valid_to_run.is_(None), Calibration.valid_to_run >= run_id),
        )
        .order_by(Calibration.version.desc())
        .limit(1)
    )


def calibration_before(session: Session, *, version: int) -> Calibration | None:
    """The newest calibration older than ``version`` (the one it replaced, for comparisons)."""
    return session.scalar(
        select(Calibration)
        .where(Calibration.version < version)
        .order_by(Calibration.version.desc())
        .limit(1)
    )


def list_calibrations(session: Session) -> list[Calibration]:
    """Every version of the calibration, oldest first."""
    return list(session.scalars(select(Calibration).order_by(Calibration.version)))


def get_calibration(session: Session, *, version: int) -> Calibration:
    """One version of the calibration.

    Raises:
        NotFoundError: no such version.
    """
    calibration = session.get(Calibration, version)
    if calibration is None:
        raise NotFoundError(f"there is no calibration version {version}.")
    return calibration
