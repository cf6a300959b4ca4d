"""Back-testing: a check's current and proposed definitions (or a run type's current and proposed
PMT cuts) judged side by side on past runs, before anything is saved.

Used by ``dqm checks backtest`` and by the dashboard's editor of checks and cuts. Nothing is stored:
the runs are read, judged here, and the table says which would change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from dqm.checks.declarations import CheckDeclaration
from dqm.checks.evaluate import evaluate
from dqm.checks.quality import Quality
from dqm.checks.runinputs import build_check_inputs
from dqm.db import queries
from dqm.pmtclass import HitRateCuts

__all__ = ["BacktestRow", "backtest", "backtest_cuts", "backtest_runs", "cut_checks"]


@dataclass(frozen=True)
class BacktestRow:
    """One run judged under the current and the proposed definition."""

    run_id: int
    run_type: str
    current: Quality
    proposed: Quality
    current_sentence: str
    proposed_sentence: str
    check: str = ""

    @property
    def changed(self) -> bool:
        return self.current != self.proposed


def backtest_runs(
    session: Session, *, run_types: Sequence[str] | None, n_runs: int, before_run: int | None = None
) -> list[int]:
    """The latest ``n_runs`` finished runs of these types (all types: None), newest first."""
    runs = queries.finished_runs(
        session, run_types=run_types, max_run=None if before_run is None else before_run - 1
    )
    return [run_id for run_id, _type in reversed(runs)][:n_runs]


def backtest(
    session: Session,
    *,
    current: CheckDeclaration,
    proposed: CheckDeclaration | None = None,
    proposed_cuts: HitRateCuts | None = None,
    run_ids: Sequence[int],
    progress: Callable[[int], object] | None = None,
) -> list[BacktestRow]:
    """Judge each run under the current and the proposed definition of a check.

    Args:
        current: the check as it is.
        proposed: the check as it would be (default: as it is, with ``proposed_cuts``).
        proposed_cuts: the PMT cuts the run type would have (default: its saved ones).
        run_ids: the runs to judge.
        progress: called with 1 after each run (a progress bar).
    """
    proposed = proposed or current
    rows = []
    for run_id in run_ids:
        run = queries.get_run(session, run_id=run_id)
        inputs, _choice = build_check_inputs(
            session, run_id=run_id, declarations=[current, proposed]
        )
        before = evaluate(current, inputs)
        after = evaluate(
            proposed, replace(inputs, pmt_cuts=proposed_cuts) if proposed_cuts else inputs
        )
        rows.append(
            BacktestRow(
                run_id,
                run.run_type,
                before.quality,
                after.quality,
                before.sentence,
                after.sentence,
                check=current.name,
            )
        )
        if progress is not None:
            progress(1)
    return rows


def cut_checks(catalog: Iterable[CheckDeclaration], run_type: str) -> list[CheckDeclaration]:
    """The checks of a run type whose judgement depends on its PMT cuts."""
    return [c for c in catalog if c.spec.uses_pmt_cuts and c.applies_to(run_type)]


def backtest_cuts(
    session: Session,
    *,
    checks: Sequence[CheckDeclaration],
    proposed_cuts: HitRateCuts,
    run_ids: Sequence[int],
    progress: Callable[[int], object] | None = None,
) -> list[BacktestRow]:
    """Judge each run under its run type's saved PMT cuts and under ``proposed_cuts``, by every
    check that reads them (:func:`cut_checks`): one row per run and check."""
    rows = []
    for run_id in run_ids:
        run = queries.get_run(session, run_id=run_id)
        inputs, _choice = build_check_inputs(session, run_id=run_id, declarations=checks)
        proposed = replace(inputs, pmt_cuts=proposed_cuts)
        for check in checks:
            before, after = evaluate(check, inputs), evaluate(check, proposed)
            rows.append(
                BacktestRow(
                    run_id,
                    run.run_type,
                    before.quality,
                    after.quality,
                    before.sentence,
                    after.sentence,
                    check=check.name,
                )
            )
        if progress is not None:
            progress(1)
    return rows
