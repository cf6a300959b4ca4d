"""The registry of job kinds, XENONnT offline-monitoring style.

A job kind says when jobs of its kind are wanted (on which events, for which run types, per file
or per run), how to build a worker's input from the database (``prepare``, in the job server), what
the worker computes (``execute``, a pure picklable function in a worker process), and how to store
the result (``complete``, in the job server, in the same transaction that marks the job DONE).
Later stages and analyses add themselves with :func:`register`.

Events: ``file_announced`` (a file_ready was accepted), ``file_done`` (a file's processing is
DONE), ``run_ended`` (a run_end was accepted). Analysis jobs (:mod:`pipeline.analyses`) are created
after merges, by the analyses' own rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dqm import __version__, detector, keptevents, pmtstatus, rawformat
from dqm.analyses.declarations import Catalog
from dqm.checks.declarations import CheckCatalog
from dqm.checks.runinputs import pmt_cuts
from dqm.config import DEFAULT_REC_METHOD, Settings
from dqm.db import queries
from dqm.db.models import File, Job, Run
from dqm.errors import DQMError, InvalidValueError
from dqm.histcodec import array_from_bytes
from dqm.states import FileState, JobState
from pipeline.stages import calib, merge, processing
from pipeline.stages.merge import MergeResult, MergeTask
from pipeline.stages.reading import RawFile, not_ready

EVENTS = ("file_announced", "file_done", "run_ended")


@dataclass(frozen=True)
class Context:
    """What ``prepare``, ``complete`` and ``check_ready`` may use besides the database."""

    settings: Settings
    server_id: str
    code_version: str = __version__
    file_jobs: int = 1  # processes over the chunks of one file
    backend: str | None = None  # joblib backend for them (None: loky; "dask" on a Dask cluster)
    catalog: Catalog | None = None  # the analyses declared (None: no analysis runs)
    checks: CheckCatalog | None = None  # the checks declared (None: no check runs)
    # called with (run, checks job) when a completed run's final checks are stored: its report
    on_checked: Callable[[int, int], None] | None = None


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
        time_limit: ``time_limit(job, context) -> seconds``: a job out longer is FAILED (its
            work cannot finish); None: only the job server's general job timeout applies.
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
    time_limit: Callable[[Job, Context], float | None] | None = None


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
    return queries.get_file(session, file_id=job.file_id)


class NoCalibration(DQMError):
    """Calibrations are stored, but none is valid for the run."""


def calibration_constants(session: Session, run_id: int) -> calib.CalibConstants:
    """The calibration valid for a run; the nominal constants (version 0) while the database holds
    no calibration at all (a new installation).

    Raises:
        NoCalibration: calibrations exist, but none is valid for this run.
    """
    row = queries.calibration_for_run(session, run_id=run_id)
    if row is None:
        first = queries.first_calibration(session)
        if first is not None:
            raise NoCalibration(
                f"no calibration is valid for run {run_id}: the first, version {first.version}, "
                f"is valid from run {first.valid_from_run}; derive one with `dqm calibrate` from "
                "an earlier laser run."
            )
        return calib.CalibConstants.nominal()
    return calib.CalibConstants(
        row.version, array_from_bytes(row.gains), array_from_bytes(row.time_offsets)
    )


def raw_file(file: File, settings: Settings) -> RawFile:
    """The raw file a ``files`` row announces, at its path under the allowed raw roots.

    Raises:
        DQMError: its URI is outside the allowed raw roots.
    """
    return RawFile(
        path=rawformat.resolve_raw_uri(file.uri, settings.raw_roots),
        run_id=file.run_id,
        seq=file.seq,
        size=file.size,
        checksum=file.checksum,
    )


def _prepare_process_file(session: Session, job: Job, context: Context) -> processing.FileTask:
    file = _file_of(session, job)
    run = queries.get_run(session, run_id=job.run_id)
    if run.rec_method is None:  # chosen once per run, recorded with it
        run.rec_method = DEFAULT_REC_METHOD
    mask = queries.pmt_mask_for_run(session, run_id=job.run_id)
    return processing.FileTask(
        file=raw_file(file, context.settings),
        calibration=calibration_constants(session, job.run_id),
        sampling_fraction=run.sampling_fraction,
        rec_method=run.rec_method,
        n_jobs=context.file_jobs,
        backend=context.backend,
        masked_pmts=pmtstatus.decode_ids(mask.pmts) if mask is not None else None,
        mask_version=mask.version if mask is not None else 0,
    )


def _ready_process_file(session: Session, job: Job, context: Context) -> str | None:
    file = _file_of(session, job)
    location = rawformat.resolve_raw_uri(file.uri, context.settings.raw_roots)
    return not_ready(location, file.size)


def _provenance(context: Context, **extra: Any) -> dict[str, Any]:
    return {"code_version": context.code_version, **extra}


def _store_results(
    session: Session,
    job: Job,
    file_id: int | None,
    histograms: dict[str, dict[str, Any]],
    pmt_sums: dict[str, Any],
    n_events: int,
    livetime_ns: float,
    provenance: dict[str, Any],
    titles: dict[str, str],
) -> None:
    for stage, by_name in histograms.items():
        for name, histogram in by_name.items():
            queries.save_histogram(
                session,
                run_id=job.run_id,
                file_id=file_id,
                stage=stage,
                name=name,
                histogram=histogram,
                title=titles.get(name),
                provenance=provenance,
            )
    if pmt_sums:
        queries.save_pmt_stats(
            session,
            run_id=job.run_id,
            file_id=file_id,
            n_events=n_events,
            livetime_ns=livetime_ns,
            arrays=pmt_sums,
            provenance=provenance,
        )


def _complete_process_file(
    session: Session, job: Job, result: processing.FileResult, context: Context
) -> None:
    file = _file_of(session, job)
    run = queries.get_run(session, run_id=job.run_id)
    provenance = _provenance(
        context,
        calibration_version=getattr(
            queries.calibration_for_run(session, run_id=job.run_id), "version", 0
        ),
        rec_method=result.rec_method,
        mask_version=result.mask_version,
        sampling_fraction=run.sampling_fraction,
        input_files=[file.uri],
        events_used=result.n_events,
        events_read=result.n_read,
        events_announced=file.n_events,
        fits_not_converged=result.fits_not_converged,
    )
    _store_results(
        session,
        job,
        file.id,
        result.histograms,
        result.pmt_sums,
        result.n_events,
        result.livetime_ns,
        provenance,
        result.titles,
    )
    if result.events:
        queries.save_event_table(
            session,
            run_id=job.run_id,
            file_id=file.id,
            columns=result.events,
            sample_size=context.settings.event_sample,
        )
    if result.kept:
        queries.save_kept_events(
            session,
            run_id=job.run_id,
            file_id=file.id,
            data=keptevents.encode(result.kept),
            n_events=len(result.kept),
        )
    if file.n_events is None:
        file.n_events = result.n_read


# --- merge_run ---------------------------------------------------------------------------------


def _prepare_merge_run(session: Session, job: Job, context: Context) -> MergeTask:
    done = [
        f for f in queries.files_of_run(session, run_id=job.run_id) if f.state == FileState.DONE
    ]
    file_ids = [f.id for f in done]
    histogram_rows = queries.histograms_of_files(session, run_id=job.run_id, file_ids=file_ids)
    pmt_rows = queries.pmt_stats_of_files(session, run_id=job.run_id, file_ids=file_ids)
    run = queries.get_run(session, run_id=job.run_id)
    compacted = [f.seq for f in done if f.id not in pmt_rows or not histogram_rows[f.id]]
    if run.compacted_at is not None and compacted:
        raise InvalidValueError(
            f"run {job.run_id} was compacted on {run.compacted_at:%Y-%m-%d %H:%M} (the retention "
            f"policy): {len(compacted)} of its done files have no per-file results left to merge "
            f"(file {compacted[0]} first); its merged results stand; to merge it again, process "
            "its files again."
        )
    parts = []
    titles: dict[str, str] = {}
    file_provenances = []
    for file in done:
        histograms: dict[str, dict[str, Any]] = {}
        rows = histogram_rows[file.id]
        for row in rows:
            histograms.setdefault(row.stage, {})[row.name] = queries.load_histogram(row)
            titles[row.name] = row.title or row.name
        file_provenances.append(rows[0].provenance if rows else {})
        stats = pmt_rows.get(file.id)
        parts.append(
            calib.Sums(
                histograms=histograms,
                pmt_sums=queries.pmt_arrays(stats) if stats else {},
                n_events=stats.n_events if stats else 0,
                livetime_ns=stats.livetime_ns if stats else 0.0,
            )
        )
    versions = sorted(
        {p["calibration_version"] for p in file_provenances if "calibration_version" in p}
    )
    masks = sorted({p["mask_version"] for p in file_provenances if "mask_version" in p})
    return MergeTask(
        parts=tuple(parts),
        titles=titles,
        input_files=tuple(f.uri for f in done),
        events_read=sum(p.get("events_read", 0) for p in file_provenances),
        calibration_versions=tuple(versions),
        mask_versions=tuple(masks),
        fits_not_converged=sum(p.get("fits_not_converged", 0) for p in file_provenances),
    )


def _complete_merge_run(session: Session, job: Job, result: MergeResult, context: Context) -> None:
    run = queries.get_run(session, run_id=job.run_id)
    sums = result.sums
    provenance = _provenance(
        context,
        calibration_version=result.calibration_versions[-1]
        if result.calibration_versions
        else None,
        rec_method=run.rec_method,
        mask_version=result.mask_versions[-1] if result.mask_versions else None,
        sampling_fraction=run.sampling_fraction,
        input_files=list(result.input_files),
        n_files=len(result.input_files),
        events_used=sums.n_events,
        events_read=result.events_read,
        fits_not_converged=result.fits_not_converged,
    )
    _store_results(
        session,
        job,
        None,
        sums.histograms,
        sums.pmt_sums,
        sums.n_events,
        sums.livetime_ns,
        provenance,
        result.titles,
    )
    _store_pmt_status(session, run, sums)


def _store_pmt_status(session: Session, run: Run, sums: calib.Sums) -> None:
    """The status of the run's PMTs under its type's cuts, replacing the last merge's."""
    arrays = sums.pmt_sums
    if not sums.n_events or len(arrays.get("fired_events", ())) != detector.N_PMTS:
        return
    cuts = pmt_cuts(session, run_type=run.run_type)
    queries.save_pmt_status(
        session,
        run_id=run.run_id,
        run_type=run.run_type,
        codes=pmtstatus.status_from_sums(arrays, sums.n_events, sums.livetime_ns, cuts),
        cuts=cuts,
        n_events=sums.n_events,
        values=pmtstatus.history_values(arrays, sums.n_events, sums.livetime_ns),
    )


PROCESS_FILE = register(
    JobKind(
        name="process_file",
        description="calibrate and reconstruct a raw file: Calib and Rec histograms, PMT statistics",
        triggers=frozenset({"file_announced"}),
        per_file=True,
        execute=processing.process_file,
        prepare=_prepare_process_file,
        complete=_complete_process_file,
        check_ready=_ready_process_file,
        permanent_errors=(rawformat.RawFormatError,),
    )
)

MERGE_RUN = register(
    JobKind(
        name="merge_run",
        description="sum the histograms and PMT statistics of a run's done files",
        triggers=frozenset({"file_done", "run_ended"}),
        per_file=False,
        execute=merge.merge_run,
        prepare=_prepare_merge_run,
        complete=_complete_merge_run,
    )
)

#: Job states a scheduler owns while the work is out.
ACTIVE_STATES = (JobState.SUBMITTED, JobState.RUNNING)
