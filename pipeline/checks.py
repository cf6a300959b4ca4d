"""Checks jobs: one evaluation of every check that applies to a run, queued

- after each merge of the run (while it takes data its checks are TooFew at first, then judge as
  its statistics grow);
- once its analyses are done (the checks of analysis variables read them);
- by ``dqm checks rerun`` (a check's definition changed version);
- when an earlier run of its type completes and becomes its reference (runs complete out of
  order: a run judged against an older reference is judged again against the right one).

A run's pending TODO checks job is reused, and one is out at a time (a run-level job). The inputs
are read in the job server (:func:`dqm.checks.runinputs.build_check_inputs`), the checks are
evaluated in a worker (:func:`dqm.checks.evaluate.evaluate_task`, pure), and the results, the run's
quality and the alarms they open or resolve are stored in the transaction that marks the job DONE.
A check that raises gives Unknown for itself only.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from dqm.analyses.runview import build_run_view
from dqm.checks.evaluate import CheckInputs, CheckOutcome, CheckTask, evaluate_task
from dqm.checks.records import queue_checks, store_outcomes, with_saved_versions
from dqm.checks.references import choose_reference
from dqm.checks.runinputs import build_check_inputs
from dqm.db import queries
from dqm.db.models import Job
from dqm.runstatus import CHECKS_JOB_KIND, PENDING_JOB_STATES
from dqm.states import RunStatus
from pipeline import jobs

log = logging.getLogger("dqm.checks")

__all__ = ["CHECKS", "after_analysis", "after_merge"]


def _prepare(session: Session, job: Job, context: jobs.Context) -> CheckTask:
    run = queries.get_run(session, run_id=job.run_id)
    if context.checks is None:
        return CheckTask(
            run_id=job.run_id,
            declarations=(),
            inputs=CheckInputs(run=build_run_view(session, run_id=job.run_id, events=False)),
        )
    catalog = with_saved_versions(session, context.checks)  # a version saved meanwhile holds
    declarations = catalog.for_run(run.run_type)
    inputs, _choice = build_check_inputs(session, run_id=job.run_id, declarations=declarations)
    return CheckTask(run_id=job.run_id, declarations=tuple(declarations), inputs=inputs)


def _complete(
    session: Session, job: Job, outcomes: list[CheckOutcome], context: jobs.Context
) -> None:
    quality, _changes = store_outcomes(
        session,
        run_id=job.run_id,
        outcomes=outcomes,
        warning_streak=context.settings.alarms.warning_streak,
        job_id=job.id,
    )
    log.info("run %d: %d checks evaluated, quality %s", job.run_id, len(outcomes), quality)
    if _final(session, job.run_id):
        _judge_again_later_runs(session, job.run_id, context)
        if context.on_checked is not None:
            context.on_checked(job.run_id, job.id)


def _judge_again_later_runs(session: Session, run_id: int, context: jobs.Context) -> None:
    """A run just became a possible reference (complete and judged): later runs of its type that
    were judged against an earlier reference, because it was not ready when they completed, are
    judged again if it is now theirs (runs complete out of order)."""
    run = queries.get_run(session, run_id=run_id)
    for later, used in queries.runs_judged_before(
        session, run_type=run.run_type, reference_run=run_id
    ).items():
        choice = choose_reference(session, run_id=later)
        if choice.run_id is not None and choice.run_id != used:
            log.info(
                "run %d: judged against run %d, its reference is now run %d: checks queued",
                later,
                used,
                choice.run_id,
            )
            queue_checks(session, run_id=later, code_version=context.code_version)


def _final(session: Session, run_id: int) -> bool:
    """Whether these are the run's completion checks: the run is All Completed and none of its
    analyses is pending."""
    run = queries.get_run(session, run_id=run_id)
    return run.status == RunStatus.ALL_COMPLETED and not any(
        job.state in PENDING_JOB_STATES for job in queries.analysis_jobs(session, run_id=run_id)
    )


CHECKS = jobs.register(
    jobs.JobKind(
        name=CHECKS_JOB_KIND,
        description="evaluate the checks of a run, store its quality and open or resolve alarms",
        triggers=frozenset(),  # queued after merges, after analyses and by `dqm checks rerun`
        per_file=False,
        execute=evaluate_task,
        prepare=_prepare,
        complete=_complete,
    )
)


def after_merge(session: Session, run_id: int, context: jobs.Context) -> Job | None:
    """Queue the run's checks after a merge (in the caller's transaction)."""
    if context.checks is None or not len(context.checks):
        return None
    return queue_checks(session, run_id=run_id, code_version=context.code_version)


def after_analysis(session: Session, run_id: int, context: jobs.Context) -> Job | None:
    """Queue the run's checks once none of its analyses is pending any more."""
    if context.checks is None or not len(context.checks):
        return None
    pending = [
        job
        for job in queries.analysis_jobs(session, run_id=run_id)
        if job.state in PENDING_JOB_STATES
    ]
    if pending:
        return None
    return queue_checks(session, run_id=run_id, code_version=context.code_version)
