"""Analysis jobs: one per (analysis, version, run), created when a run reaches the point its
analyses declare, and run through the same states, limits, leases and executors as every job.

- After each merge of a run whose data are not complete yet, the ``live`` analyses that apply to it
  get a job (one pending at a time: a TODO job is reused).
- After the merge that completes a run's data (run_end received, every announced file done or
  given up, no merge pending), every analysis that applies to it gets a job.

A job waits while an input it requires is missing, and goes to TOCHECK after the availability
timeout. Its result is stored in the transaction that marks it DONE, replacing the result of the
same (analysis, version, run): there is exactly one, whatever crashes in between. An analysis that
raises, returns something invalid or runs past its timeout is FAILED at once, with its reason and
traceback; it fails alone.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from dqm.analyses.declarations import Declaration
from dqm.analyses.execute import AnalysisFailed, AnalysisOutput, AnalysisTask, run_analysis
from dqm.analyses.records import store_output
from dqm.analyses.runview import build_run_view, missing_requirements
from dqm.db import queries
from dqm.db.models import Job, Run
from dqm.errors import DQMError
from dqm.runstatus import PENDING_JOB_STATES
from dqm.states import FileState
from pipeline import jobs

log = logging.getLogger("dqm.analyses")

__all__ = ["ANALYSIS", "after_merge", "data_complete"]


class NotDeclared(DQMError):
    """An analysis job names an analysis or version this job server does not declare."""


def _declaration(job: Job, context: jobs.Context) -> Declaration:
    catalog = context.catalog
    name, version = job.analysis, job.analysis_version
    if catalog is None or name is None or name not in catalog:
        raise NotDeclared(
            f"analysis {name!r} is not declared in this job server; declare it (or retry the job "
            "on a job server that does)."
        )
    declaration = catalog.get(name)
    if declaration.version != version:
        raise NotDeclared(
            f"analysis {name} version {version} is not declared in this job server, which "
            f"declares version {declaration.version}; its results stay as they are."
        )
    return declaration


def _ready(session: Session, job: Job, context: jobs.Context) -> str | None:
    declaration = _declaration(job, context)
    missing = missing_requirements(session, run_id=job.run_id, requires=declaration.requires)
    return f"waiting for {', '.join(missing)}" if missing else None


def _prepare(session: Session, job: Job, context: jobs.Context) -> AnalysisTask:
    declaration = _declaration(job, context)
    view = build_run_view(session, run_id=job.run_id, requires=declaration.requires)
    provenance = view.provenance
    lineage = {
        "code_version": context.code_version,
        "analysis_version": declaration.version,
        "function": declaration.function,
        "parameters": dict(declaration.parameters),
        "calibration_version": provenance.calibration_version,
        "rec_method": provenance.rec_method,
        "sampling_fraction": provenance.sampling_fraction,
        "events_used": provenance.events_used,
        "events_read": provenance.events_read,
        "n_files": len(provenance.input_files),
        "input_files": list(provenance.input_files),
        "run_status": view.run.status,
        "data_complete": data_complete(session, queries.get_run(session, run_id=job.run_id)),
        "job_id": job.id,
    }
    return AnalysisTask(declaration=declaration, view=view, lineage=lineage)


def _complete(session: Session, job: Job, output: AnalysisOutput, context: jobs.Context) -> None:
    store_output(session, output=output, lineage=output.lineage, job_id=job.id)


ANALYSIS = jobs.register(
    jobs.JobKind(
        name=queries.ANALYSIS_JOB_KIND,
        description="run a declared analysis on a run and store its variables with their lineage",
        triggers=frozenset(),  # created by after_merge and by backfills, not by a message
        per_file=False,
        execute=run_analysis,
        prepare=_prepare,
        complete=_complete,
        check_ready=_ready,
        permanent_errors=(AnalysisFailed, NotDeclared),
        time_limit=lambda job, context: _time_limit(job, context),
    )
)


def _time_limit(job: Job, context: jobs.Context) -> float | None:
    """The job server's own deadline of an analysis job: its timeout, and a margin for the
    worker's start and the transfer of its input (the worker's timer normally fires first)."""
    try:
        return _declaration(job, context).timeout_s * 1.5 + 60.0
    except NotDeclared:
        return None


def data_complete(session: Session, run: Run) -> bool:
    """Whether a run's data are complete: it ended, every file it counted was announced and is
    done or given up, and no merge is pending."""
    if run.end_time is None:
        return False
    files = queries.files_of_run(session, run_id=run.run_id)
    if run.n_files is not None and len(files) < run.n_files:
        return False
    if any(f.state in (FileState.ANNOUNCED, FileState.PROCESSING) for f in files):
        return False
    return not any(
        job.state in PENDING_JOB_STATES
        for job in queries.list_jobs(
            session, run_id=run.run_id, kind=jobs.MERGE_RUN.name, limit=None
        )
    )


def after_merge(session: Session, run_id: int, context: jobs.Context) -> list[Job]:
    """Create the analysis jobs a merge of the run calls for (in the caller's transaction)."""
    catalog = context.catalog
    if catalog is None or not len(catalog):
        return []
    run = queries.get_run(session, run_id=run_id)
    if not any(f.state == FileState.DONE for f in queries.files_of_run(session, run_id=run_id)):
        return []  # nothing processed yet (a merge on run_end before any file): nothing to analyse
    complete = data_complete(session, run)
    tags = queries.run_tags(session, run_id=run_id)
    wanted = catalog.for_run(
        run_id=run_id, run_type=run.run_type, tags=tags, live=None if complete else True
    )
    created = []
    for declaration in wanted:
        waiting = queries.open_analysis_job(
            session, run_id=run_id, analysis=declaration.name, version=declaration.version
        )
        if waiting is not None:
            waiting.not_before = None  # what it waited for may be there now: look at once
            continue
        created.append(
            queries.add_job(
                session,
                kind=ANALYSIS.name,
                run_id=run_id,
                analysis=declaration.name,
                analysis_version=declaration.version,
                code_version=context.code_version,
            )
        )
    if created:
        log.info(
            "run %d: %s analyses queued: %s",
            run_id,
            "completion" if complete else "live",
            ", ".join(f"{job.analysis} v{job.analysis_version}" for job in created),
        )
    return created
