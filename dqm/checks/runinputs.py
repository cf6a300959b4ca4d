"""What the checks of a run read, gathered from the database: the run's view, its reference's,
its analysis variables, the same variables in earlier Good runs, and its run type's PMT cuts.

Used by the job server (a checks job's input), by ``dqm checks backtest`` and by the dashboard's
back-testing: all three judge a run on the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from dqm.analyses.api import Value
from dqm.analyses.runview import build_run_view
from dqm.checks.declarations import CheckDeclaration
from dqm.checks.evaluate import CheckInputs
from dqm.checks.references import ReferenceChoice, choose_reference
from dqm.db import queries
from dqm.pmtclass import DEFAULT_CUTS, HitRateCuts

__all__ = ["build_check_inputs", "pmt_cuts"]


def pmt_cuts(session: Session, *, run_type: str) -> HitRateCuts:
    """The PMT cuts of a run type: those saved for it, else the built-in ones."""
    row = queries.cut_defaults(session, run_type=run_type)
    if row is None:
        return DEFAULT_CUTS
    return HitRateCuts(row.dead_cut, row.hot_cut, (row.normal_low, row.normal_high))


def build_check_inputs(
    session: Session,
    *,
    run_id: int,
    declarations: Sequence[CheckDeclaration],
    reference: ReferenceChoice | None = None,
) -> tuple[CheckInputs, ReferenceChoice]:
    """The inputs of these checks on a run, and the reference chosen for it.

    Args:
        declarations: the checks to evaluate (the reference and the history are read only if one
            of them needs them).
        reference: the reference to use (default: :func:`~dqm.checks.references.choose_reference`).

    Raises:
        NotFoundError: no such run.
    """
    run = queries.get_run(session, run_id=run_id)
    view = build_run_view(session, run_id=run_id, events=False)
    choice = reference or choose_reference(session, run_id=run_id)
    reference_view = None
    if choice.run_id is not None and any(d.needs_reference for d in declarations):
        reference_view = build_run_view(session, run_id=choice.run_id, events=False)
    keys = {d.variable for d in declarations if d.variable is not None}
    values = {
        key: Value(value, error, unit)
        for key, (value, error, unit) in queries.latest_analysis_values(
            session, run_id=run_id, keys=keys
        ).items()
    }
    n_history = max((d.history_runs for d in declarations), default=0)
    history: dict[tuple[str, str], list[float]] = {}
    if n_history and keys:
        earlier = queries.clean_runs(
            session, run_type=run.run_type, before_run=run_id, limit=n_history
        )
        history = queries.history_values(session, run_ids=[r.run_id for r in earlier], keys=keys)
    inputs = CheckInputs(
        run=view,
        reference=reference_view,
        reference_reason=choice.reason,
        analysis_values=values,
        history=history,
        pmt_cuts=pmt_cuts(session, run_type=run.run_type),
        analyses_done=frozenset(queries.analyses_with_results(session, run_id=run_id)),
    )
    return inputs, choice
