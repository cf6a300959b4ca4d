"""The reference run of a run: the one rule, used by the job server's checks, by
``dqm reference RUN`` and by the dashboard.

In order:

1. a reference pinned for this very run by a shifter;
2. a reference pinned for its run type by an expert;
3. the latest run of the same type before it certified Good by an expert (for calibration runs
   also of the same source at the same position);
4. else the latest clean run (:data:`~dqm.db.queries.checks.CLEAN_QUALITIES`: no check found
   anything wrong in it) of the same type before it, All Completed, in the same conditions.

Never the run itself: a pin naming it is passed over. Without any, the checks that need a
reference give Unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from dqm.db import queries
from dqm.times import format_time

__all__ = ["ReferenceChoice", "choose_reference"]

#: Run types whose reference must share the calibration source and its position.
SOURCE_RUN_TYPES = frozenset({"calibration"})


@dataclass(frozen=True)
class ReferenceChoice:
    """The reference chosen for a run, and why (one sentence)."""

    run_id: int | None
    reason: str
    pinned: bool = False


def _conditions(run_type: str, source: str | None, z_mm: float | None) -> str:
    if run_type not in SOURCE_RUN_TYPES:
        return f"{run_type} run"
    where = f" at z = {z_mm:g} mm" if z_mm is not None else ""
    return f"{run_type} run with source {source or 'none'}{where}"


def choose_reference(session: Session, *, run_id: int) -> ReferenceChoice:
    """The reference of a run and why it was chosen.

    Raises:
        NotFoundError: no such run.
    """
    run = queries.get_run(session, run_id=run_id)
    pin = queries.reference_pin(session, run_type=run.run_type, run_id=run_id)
    if pin is not None and pin.reference_run != run_id:
        scope = f"for run {run_id}" if pin.run_id is not None else f"for {run.run_type} runs"
        said = f" ({pin.comment})" if pin.comment else ""
        return ReferenceChoice(
            pin.reference_run,
            f"run {pin.reference_run} was pinned {scope} by {pin.user} at "
            f"{format_time(pin.at)}{said}.",
            pinned=True,
        )
    same_source = run.run_type in SOURCE_RUN_TYPES
    conditions = _conditions(run.run_type, run.source, run.source_z_mm)
    certified = queries.clean_runs(
        session,
        run_type=run.run_type,
        before_run=run_id,
        source=run.source,
        source_z_mm=run.source_z_mm,
        same_source=same_source,
        certified=True,
    )
    if certified:
        chosen = certified[0]
        return ReferenceChoice(
            chosen.run_id,
            f"run {chosen.run_id} is the latest {conditions} before run {run_id} certified Good.",
        )
    found = queries.clean_runs(
        session,
        run_type=run.run_type,
        before_run=run_id,
        source=run.source,
        source_z_mm=run.source_z_mm,
        same_source=same_source,
    )
    if found:
        chosen = found[0]
        return ReferenceChoice(
            chosen.run_id,
            f"run {chosen.run_id} is the latest completed {conditions} before run {run_id} in "
            f"which no check found anything wrong (quality {chosen.quality}).",
        )
    return ReferenceChoice(
        None,
        f"no completed {conditions} before run {run_id} is free of Warning and Bad checks, and "
        "no reference is pinned: the checks against a reference give Unknown.",
    )
