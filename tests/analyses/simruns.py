"""Simulated runs turned into the view an analysis receives, the way production builds it but
without a database: each raw file processed by the processing stage, the files merged by the
merge stage, the run's attributes, files and lineage filled in.

A module of its own rather than the conftest: with several test directories on one command line,
``import conftest`` would find another directory's.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from daqsim import SimulationConfig, SimulationResult, parse_fault, simulate_run
from dqm import __version__, eventtable
from dqm.analyses import (
    CalibrationInfo,
    EventColumns,
    FileInfo,
    PmtStatistics,
    ProcessingInfo,
    Provenance,
    RunInfo,
    RunView,
)
from dqm.config import Settings
from pipeline.stages import calib, laser, merge, processing
from pipeline.stages.reading import RawFile

__all__ = [
    "Calibration",
    "laser_calibration",
    "manifest",
    "nominal_calibration",
    "run_view",
    "simulate",
]

#: Worker processes for simulating and processing (the test machines have two cores).
N_JOBS = 2


def simulate(
    settings: Settings, run_id: int, *, faults: tuple[str, ...] = (), **config: Any
) -> SimulationResult:
    """Simulate a run (faults as on the command line, ``dead:n=20``)."""
    return simulate_run(
        SimulationConfig(
            run_id=run_id,
            faults=tuple(parse_fault(f) for f in faults),
            start_time=dt.datetime(2026, 11, 2, 8, 0) + dt.timedelta(hours=run_id % 24),
            n_jobs=N_JOBS,
            **config,
        ),
        settings,
        overwrite=True,
        progress=False,
    )


def manifest(result: SimulationResult) -> dict[str, Any]:
    """The simulator's truth about the run: its configuration, faults and the PMTs they hit."""
    assert result.manifest is not None
    content: dict[str, Any] = json.loads(Path(result.manifest).read_text())
    return content


class Calibration:
    """A calibration as the processing stage applies it and as an analysis sees it."""

    def __init__(self, constants: calib.CalibConstants, info: CalibrationInfo) -> None:
        self.constants = constants
        self.info = info


def nominal_calibration() -> Calibration:
    """The nominal constants (version 0: no calibration stored yet)."""
    constants = calib.CalibConstants.nominal()
    info = CalibrationInfo(
        version=0,
        valid_from_run=None,
        source_run=None,
        gains=constants.gain,
        time_offsets_ns=constants.offset_ns,
    )
    return Calibration(constants, info)


def laser_calibration(result: SimulationResult, version: int = 1) -> Calibration:
    """Gains and offsets derived from a laser run, as ``dqm calibrate`` derives them."""
    files = [RawFile(path=f.path, run_id=result.run_id, seq=f.seq) for f in result.files]
    fitted = laser.fit(laser.laser_sums(f) for f in files)
    constants = calib.CalibConstants(version, fitted.gain, fitted.offset_ns)
    info = CalibrationInfo(
        version=version,
        valid_from_run=result.run_id,
        source_run=result.run_id,
        gains=fitted.gain,
        time_offsets_ns=fitted.offset_ns,
        pmt_status=fitted.status.astype(np.int8),
    )
    return Calibration(constants, info)


def run_view(
    result: SimulationResult,
    calibration: Calibration | None = None,
    *,
    previous: Calibration | None = None,
    rec_method: str = "tlh",
) -> RunView:
    """Process every delivered file of a simulated run, merge them, and view the run."""
    calibration = calibration or nominal_calibration()
    delivered = [f for f in result.files if f.delivered and not f.corrupt]
    results = [
        processing.process_file(
            processing.FileTask(
                file=RawFile(
                    path=f.path,
                    run_id=result.run_id,
                    seq=f.seq,
                    size=f.size,
                    checksum=f.checksum,
                ),
                calibration=calibration.constants,
                rec_method=rec_method,
                n_jobs=N_JOBS,
            )
        )
        for f in delivered
    ]
    merged = merge.merge_run(
        merge.MergeTask(
            parts=tuple(
                calib.Sums(r.histograms, r.pmt_sums, r.n_events, r.livetime_ns) for r in results
            ),
            titles={**results[0].titles} if results else {},
            input_files=tuple(str(f.path) for f in delivered),
            events_read=sum(r.n_read for r in results),
            calibration_versions=(calibration.constants.version,),
        )
    )
    events = {
        name: np.concatenate([r.events[name] for r in results])
        if results
        else np.zeros(0, np.float32)
        for name in eventtable.COLUMNS
    }
    config = manifest(result)["config"]
    sums = merged.sums
    return RunView(
        run=RunInfo(
            run_id=result.run_id,
            run_type=result.run_type,
            start_time=result.start_time,
            end_time=result.end_time,
            status="All Completed",
            n_events=result.n_events,
            n_files=len(result.files),
            source=config["source"],
            source_z_mm=config["source_z_mm"] if result.run_type == "calibration" else None,
            trigger_rate_hz=config["trigger_rate_hz"],
            rec_method=rec_method,
        ),
        histograms=sums.histograms,
        pmt=PmtStatistics(sums.n_events, sums.livetime_ns, sums.pmt_sums),
        events=EventColumns(events),
        calibration=calibration.info,
        previous_calibration=previous.info if previous is not None else None,
        files=tuple(
            FileInfo(
                seq=f.seq,
                uri=str(f.path),
                size=f.size,
                n_events=f.n_events,
                state="done" if f in delivered else "failed",
            )
            for f in result.files
        ),
        processing=ProcessingInfo(file_jobs={"DONE": len(delivered)}),
        provenance=Provenance(
            code_version=__version__,
            calibration_version=calibration.constants.version,
            rec_method=rec_method,
            events_used=sums.n_events,
            events_read=merged.events_read,
            input_files=merged.input_files,
            fits_not_converged=sum(r.fits_not_converged for r in results),
        ),
    )
