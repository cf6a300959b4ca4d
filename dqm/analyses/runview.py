"""The view of a run an analysis receives, read from the database; and what it still lacks.

Used by the job server (to build an analysis job's input) and by ``dqm analyses run`` (to try an
analysis by hand): both read the same view the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from dqm import detector
from dqm.analyses.api import (
    CalibrationInfo,
    EventColumns,
    FileInfo,
    PmtStatistics,
    ProcessingInfo,
    Provenance,
    RunInfo,
    RunView,
)
from dqm.analyses.declarations import REQUIREMENTS
from dqm.db import queries
from dqm.db.models import Calibration, Run
from dqm.histcodec import AnyHist, array_from_bytes
from dqm.states import JobState

__all__ = ["build_run_view", "missing_requirements", "run_info"]

#: The kinds of job whose results make a run's data (their states are the processing facts).
_FILE_JOB_KIND = "process_file"
_MERGE_JOB_KIND = "merge_run"


def run_info(session: Session, run: Run) -> RunInfo:
    """A run's attributes and tags as the analyses see them."""
    return RunInfo(
        run_id=run.run_id,
        run_type=run.run_type,
        detector=run.detector,
        start_time=run.start_time,
        end_time=run.end_time,
        status=run.status.value,
        n_events=run.n_events,
        n_files=run.n_files,
        tags=frozenset(queries.run_tags(session, run_id=run.run_id)),
        source=run.source,
        source_z_mm=run.source_z_mm,
        trigger_rate_hz=run.trigger_rate_hz,
        sampling_fraction=run.sampling_fraction,
        rec_method=run.rec_method,
        comment=run.comment,
    )


def missing_requirements(session: Session, *, run_id: int, requires: Iterable[str]) -> list[str]:
    """The requirements (:data:`~dqm.analyses.declarations.REQUIREMENTS`) the run does not meet
    yet, each as what it means."""
    missing = []
    for requirement in requires:
        if not _has(session, run_id, requirement):
            missing.append(REQUIREMENTS.get(requirement, requirement))
    return missing


def _has(session: Session, run_id: int, requirement: str) -> bool:
    if requirement in ("calib_histograms", "rec_histograms"):
        stage = requirement.split("_")[0]
        return bool(queries.histogram_rows(session, run_id=run_id, stage=stage))
    if requirement == "pmt_stats":
        return queries.pmt_stats_row(session, run_id=run_id) is not None
    if requirement == "event_table":
        return queries.has_event_tables(session, run_id=run_id)
    if requirement == "calibration":
        return queries.calibration_for_run(session, run_id=run_id) is not None
    if requirement == "previous_calibration":
        current = queries.calibration_for_run(session, run_id=run_id)
        return (
            current is not None
            and queries.calibration_before(session, version=current.version) is not None
        )
    if requirement == "run_end":
        return queries.get_run(session, run_id=run_id).end_time is not None
    raise ValueError(f"unknown requirement {requirement!r}")


def _nominal_calibration() -> CalibrationInfo:
    """The constants a run is processed with while no calibration is stored (version 0)."""
    return CalibrationInfo(
        version=0,
        valid_from_run=None,
        source_run=None,
        gains=np.full(detector.N_PMTS, detector.NOMINAL_GAIN_ADC_PER_PE),
        time_offsets_ns=np.zeros(detector.N_PMTS),
    )


def _calibration(row: Calibration | None) -> CalibrationInfo | None:
    if row is None:
        return None
    return CalibrationInfo(
        version=row.version,
        valid_from_run=row.valid_from_run,
        source_run=row.source_run,
        gains=array_from_bytes(row.gains),
        time_offsets_ns=array_from_bytes(row.time_offsets),
        pmt_status=array_from_bytes(row.pmt_status),
    )


def build_run_view(
    session: Session, *, run_id: int, requires: Iterable[str] = (), events: bool | None = None
) -> RunView:
    """The read-only view of a run for an analysis.

    The merged histograms, the per-PMT statistics, the calibrations, the files and the processing
    facts are always read; the event table (the largest part) only when the analysis requires it.

    Args:
        requires: the analysis's requirements.
        events: read the event table (default: when ``event_table`` is required).

    Raises:
        NotFoundError: no such run.
    """
    run = queries.get_run(session, run_id=run_id)
    requires = set(requires)
    histograms: dict[str, dict[str, AnyHist]] = {}
    provenance: dict[str, Any] = {}
    for row in queries.histogram_rows(session, run_id=run_id):
        histograms.setdefault(row.stage, {})[row.name] = queries.load_histogram(row)
        provenance = provenance or dict(row.provenance or {})
    stats = queries.pmt_stats_row(session, run_id=run_id)
    pmt = None
    if stats is not None:
        pmt = PmtStatistics(
            n_events=stats.n_events,
            livetime_ns=stats.livetime_ns,
            sums=queries.pmt_arrays(stats),
        )
        provenance = provenance or dict(stats.provenance or {})
    table = None
    if events if events is not None else "event_table" in requires:
        table = EventColumns(queries.run_events(session, run_id=run_id))
    current = queries.calibration_for_run(session, run_id=run_id)
    previous = (
        queries.calibration_before(session, version=current.version)
        if current is not None
        else None
    )
    files = queries.files_of_run(session, run_id=run_id)
    file_jobs: dict[str, int] = {}
    done_at: dict[int, dt.datetime] = {}
    data_complete_at = None
    for job in queries.list_jobs(session, run_id=run_id, limit=None):
        if job.kind == _FILE_JOB_KIND:
            file_jobs[job.state.value] = file_jobs.get(job.state.value, 0) + 1
            if job.state == JobState.DONE and job.file_id is not None and job.finished_at:
                done_at[job.file_id] = job.finished_at
        elif (
            job.kind == _MERGE_JOB_KIND
            and job.state == JobState.DONE
            and job.finished_at is not None
            and (data_complete_at is None or job.finished_at > data_complete_at)
        ):
            data_complete_at = job.finished_at
    return RunView(
        run=run_info(session, run),
        histograms=histograms,
        pmt=pmt,
        events=table,
        # the run was processed with the nominal constants while no calibration is stored
        calibration=_calibration(current)
        if current is not None or queries.first_calibration(session) is not None
        else _nominal_calibration(),
        previous_calibration=_calibration(previous),
        files=tuple(
            FileInfo(
                seq=f.seq,
                uri=f.uri,
                size=f.size,
                n_events=f.n_events,
                state=f.state.value,
                arrived_at=f.arrived_at,
                done_at=done_at.get(f.id),
            )
            for f in files
        ),
        processing=ProcessingInfo(
            run_end_received_at=queries.run_end_received_at(session, run_id=run_id),
            data_complete_at=data_complete_at,
            file_jobs=file_jobs,
        ),
        provenance=Provenance(
            code_version=provenance.get("code_version"),
            calibration_version=provenance.get("calibration_version"),
            rec_method=provenance.get("rec_method", run.rec_method),
            sampling_fraction=float(provenance.get("sampling_fraction", run.sampling_fraction)),
            events_used=int(provenance.get("events_used", stats.n_events if stats else 0)),
            events_read=int(provenance.get("events_read", 0)),
            input_files=tuple(provenance.get("input_files", ())),
            fits_not_converged=provenance.get("fits_not_converged"),
        ),
    )
