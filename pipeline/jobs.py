"""The registry of job kinds, XENONnT offline-monitoring style.

A job kind says when jobs of its kind are wanted (on which events, for which run types, per file
or per run), how to build a worker's input from the database (``prepare``, in the job server), what
the worker computes (``execute``, a pure picklable function in a worker process), and how to store
the result (``complete``, in the job server, in the same transaction that marks the job DONE).
Later stages and analyses add themselves with :func:`register`.

Events: ``file_announced`` (a file_ready was accepted), ``file_done`` (a file's processing is
DONE), ``run_ended`` (a run_end was accepted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from dqm import __version__, rawformat
from dqm.config import Settings
from dqm.db import queries
from dqm.db.models import File, FileState, Job, JobState, Run
from pipeline.stages import hits

EVENTS = ("file_announced", "file_done", "run_ended")


@dataclass(frozen=True)
class Context:
    """What ``prepare``, ``complete`` and ``check_ready`` may use besides the database."""

    settings: Settings
    server_id: str
    code_version: str = __version__


@dataclass(frozen=True)
class JobKind:
    """A kind of job and the rules for it.

    Attributes:
        name: the ``kind`` stored in the jobs table.
        description: one line for ``dqm jobs`` and the dashboard.
        triggers: the events that create a job of this kind.
        per_file: one job per file (else one per run; a run's pending TODO job is reused).
        execute: the work, in a worker process: ``execute(argument) -> result``.
        prepare: ``prepare(session, job, context) -> argument`` for the worker.
        complete: ``complete(session, job, result, context)`` stores the result.
        check_ready: ``check_ready(session, job, context) -> None`` when the job can go, else the
            reason it waits (data not there yet).
        permanent_errors: exceptions that fail the job at once instead of being retried.
        run_types: the run types it applies to (None: all).
    """

    name: str
    description: str
    triggers: frozenset[str]
    per_file: bool
    execute: Callable[[Any], Any]
    prepare: Callable[[Session, Job, Context], Any]
    complete: Callable[[Session, Job, Any, Context], None]
    check_ready: Callable[[Session, Job, Context], str | None] | None = None
    permanent_errors: tuple[type[BaseException], ...] = ()
    run_types: frozenset[str] | None = None


REGISTRY: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Add a job kind to the registry (replacing one of the same name)."""
    unknown = set(kind.triggers) - set(EVENTS)
    if unknown:
        raise ValueError(
            f"job kind {kind.name}: unknown trigger(s) {sorted(unknown)}; use {EVENTS}."
        )
    REGISTRY[kind.name] = kind
    return kind


def create_jobs(
    session: Session, event: str, run: Run, file: File | None, context: Context
) -> list[Job]:
    """Create the jobs that ``event`` calls for (idempotent: a pending job of a run is reused)."""
    created = []
    for kind in REGISTRY.values():
        if event not in kind.triggers or (
            kind.run_types is not None and run.run_type not in kind.run_types
        ):
            continue
        if kind.per_file:
            if file is None:
                continue
            if queries.open_job(session, kind=kind.name, run_id=run.run_id, file_id=file.id):
                continue
            created.append(
                queries.add_job(
                    session,
                    kind=kind.name,
                    run_id=run.run_id,
                    file_id=file.id,
                    code_version=context.code_version,
                )
            )
        elif not queries.open_job(session, kind=kind.name, run_id=run.run_id):
            created.append(
                queries.add_job(
                    session, kind=kind.name, run_id=run.run_id, code_version=context.code_version
                )
            )
    return created


# --- process_file ------------------------------------------------------------------------------


def _file_of(session: Session, job: Job) -> File:
    assert job.file_id is not None
    file = session.get(File, job.file_id)
    assert file is not None
    return file


def _prepare_process_file(session: Session, job: Job, context: Context) -> dict[str, Any]:
    file = _file_of(session, job)
    path = rawformat.resolve_raw_uri(file.uri, context.settings.raw_roots)
    return {
        "path": str(path),
        "size": file.size,
        "checksum": file.checksum,
        "run_id": job.run_id,
        "seq": file.seq,
    }


def _ready_process_file(session: Session, job: Job, context: Context) -> str | None:
    file = _file_of(session, job)
    path = Path(rawformat.resolve_raw_uri(file.uri, context.settings.raw_roots))
    if not path.is_file():
        return f"{path} has not arrived"
    if file.size is not None and path.stat().st_size != file.size:
        return f"{path} has {path.stat().st_size} of the {file.size} bytes announced"
    return None


def _complete_process_file(
    session: Session, job: Job, result: hits.FileResult, context: Context
) -> None:
    file = _file_of(session, job)
    provenance = {
        "code_version": context.code_version,
        "input_files": [file.uri],
        "events_used": result.n_events,
        "events_announced": file.n_events,
    }
    for name, histogram in result.histograms.items():
        queries.save_histogram(
            session,
            run_id=job.run_id,
            file_id=file.id,
            stage=hits.STAGE,
            name=name,
            histogram=histogram,
            title=result.titles.get(name),
            provenance=provenance,
        )
    file.state = FileState.DONE
    if file.n_events is None:
        file.n_events = result.n_events


def _prepare_merge_run(session: Session, job: Job, context: Context) -> dict[str, Any]:
    done = [f for f in queries.files_of_run(session, job.run_id) if f.state == FileState.DONE]
    parts = []
    titles: dict[str, str | None] = {}
    for file in done:
        rows = queries.histogram_rows(session, run_id=job.run_id, file_id=file.id, stage=hits.STAGE)
        parts.append({row.name: queries.load_histogram(row) for row in rows})
        titles.update((row.name, row.title) for row in rows)
    return {
        "parts": parts,
        "titles": titles,
        "input_files": [f.uri for f in done],
        "events_used": sum(f.n_events or 0 for f in done),
    }


def _execute_merge_run(argument: dict[str, Any]) -> dict[str, Any]:
    return {**argument, "merged": hits.merge_histograms(argument["parts"]), "parts": None}


def _complete_merge_run(
    session: Session, job: Job, result: dict[str, Any], context: Context
) -> None:
    provenance = {
        "code_version": context.code_version,
        "input_files": result["input_files"],
        "n_files": len(result["input_files"]),
        "events_used": result["events_used"],
    }
    for name, histogram in result["merged"].items():
        queries.save_histogram(
            session,
            run_id=job.run_id,
            file_id=None,
            stage=hits.STAGE,
            name=name,
            histogram=histogram,
            title=result["titles"].get(name),
            provenance=provenance,
        )


PROCESS_FILE = register(
    JobKind(
        name="process_file",
        description="read a raw file: events and hits per event",
        triggers=frozenset({"file_announced"}),
        per_file=True,
        execute=hits.process_file,
        prepare=_prepare_process_file,
        complete=_complete_process_file,
        check_ready=_ready_process_file,
        permanent_errors=(rawformat.RawFormatError,),
    )
)

MERGE_RUN = register(
    JobKind(
        name="merge_run",
        description="sum the histograms of a run's done files",
        triggers=frozenset({"file_done", "run_ended"}),
        per_file=False,
        execute=_execute_merge_run,
        prepare=_prepare_merge_run,
        complete=_complete_merge_run,
    )
)

#: Job states a scheduler owns while the work is out.
ACTIVE_STATES = (JobState.SUBMITTED, JobState.RUNNING)
