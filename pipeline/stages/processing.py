"""Processing a raw file: calibration, reconstruction, the Calib and Rec histograms and the per-PMT
statistics, chunk after chunk of events — in this process or in parallel over the chunks with
joblib (``n_jobs``; through joblib's Dask backend when the job server runs on Dask).

The chunks are fixed ranges of entries, whatever ``n_jobs``; each gives sums (histogram counts,
per-PMT sums) that are added in the chunks' order, so the result is identical for any number of
workers and any backend. Pure: a function of the file and its parameters, no database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import joblib
import numpy as np

from dqm import detector, eventtable, keptevents, rawformat
from dqm.config import DEFAULT_REC_METHOD, REC_METHODS
from dqm.histcodec import AnyHist
from dqm.memory import reusing_freed_memory
from dqm.pmtstats import PMT_ARRAYS
from pipeline.stages import calib, reco, tlh
from pipeline.stages.fill import add_counts, counts_for
from pipeline.stages.reading import (
    STEP_EVENTS,
    RawFile,
    count_events,
    iterate_events,
    unreadable,
    verified,
)

__all__ = ["RANGE_EVENTS", "FileResult", "FileTask", "process_file", "process_range"]

#: Events of a unit of work (read in chunks of ``STEP_EVENTS``): the ranges are the same whatever
#: the number of workers, which keeps the results identical.
RANGE_EVENTS = 4 * STEP_EVENTS


@dataclass(frozen=True, eq=False)
class FileTask:
    """What processing a raw file needs, as the job server builds it from the database.

    Attributes:
        file: the raw file, with its announced size and checksum.
        calibration: the PMT gains and time offsets valid for its run.
        sampling_fraction: the fraction of events used (deterministic per event).
        rec_method: ``tlh`` or ``centroid``.
        n_jobs: processes over the file's ranges of events.
        backend: the joblib backend for them (None: loky; ``dask`` on a Dask cluster).
        masked_pmts: the PMT ids reconstruction leaves out (the PMT mask valid for the run;
            they are still calibrated and counted in the PMT statistics).
        mask_version: the version of that mask (0: none).
    """

    file: RawFile
    calibration: calib.CalibConstants
    sampling_fraction: float = 1.0
    rec_method: str = DEFAULT_REC_METHOD
    n_jobs: int = 1
    backend: str | None = None
    masked_pmts: np.ndarray | None = None
    mask_version: int = 0


@dataclass
class FileResult:
    """What processing a file (or a range of its events) gives: histograms by stage and name,
    per-PMT sums, event counts, and the trigger times at the range's ends."""

    n_events: int  # events used (after sampling)
    n_read: int  # events read
    histograms: dict[str, dict[str, AnyHist]] = field(default_factory=dict)
    pmt_sums: dict[str, np.ndarray] = field(default_factory=dict)
    livetime_ns: float = 0.0
    titles: dict[str, str] = field(default_factory=dict)
    rec_method: str = DEFAULT_REC_METHOD
    mask_version: int = 0
    fits_not_converged: int = 0
    first_trigger_s: float | None = None
    last_trigger_s: float | None = None
    #: the reconstructed physics events (dqm.eventtable.COLUMNS), float32
    events: dict[str, np.ndarray] = field(default_factory=dict)
    #: a few raw events for the event display: the first and the highest-energy ones
    kept: list[keptevents.KeptEvent] = field(default_factory=list)


def process_range(task: FileTask, entry_start: int, entry_stop: int) -> FileResult:
    """Process the entries ``entry_start`` to ``entry_stop`` of a raw file; the derived per-PMT
    histograms are left to the caller. Run as a joblib task: the memory it frees is kept for the
    next range."""
    with reusing_freed_memory(trim_after=False):
        return _process_range(task, entry_start, entry_stop)


def _process_range(task: FileTask, entry_start: int, entry_stop: int) -> FileResult:
    path = task.file.path
    constants = task.calibration
    method = task.rec_method
    histograms = calib.calib_histograms()
    rec = reco.rec_histograms(method)
    sums = {name: np.zeros(len(constants.gain)) for name in PMT_ARRAYS}
    result = FileResult(n_events=0, n_read=0, rec_method=method, mask_version=task.mask_version)
    residuals = counts_for(rec["time_residual"]) if "time_residual" in rec else None
    events: dict[str, list[np.ndarray]] = {name: [] for name in eventtable.COLUMNS}
    kept: list[keptevents.KeptEvent] = []
    masked = task.masked_pmts if task.masked_pmts is not None and len(task.masked_pmts) else None
    used = np.ones(len(constants.gain), dtype=np.bool_)
    if masked is not None:
        used[masked] = False
    try:
        for chunk in iterate_events(
            path,
            run_id=task.file.run_id,
            seq=task.file.seq,
            sampling_fraction=task.sampling_fraction,
            entry_start=entry_start,
            entry_stop=entry_stop,
        ):
            result.n_read += chunk.n_read
            if not chunk.n_events:
                continue
            calibrated = calib.calibrate_chunk(chunk, constants, histograms, sums, used)
            result.fits_not_converged += _reconstruct(
                chunk, calibrated, method, rec, residuals, events, masked, used, kept
            )
            kept = keptevents.reduce_events(kept)
            times_s = chunk.trigger_time * 1e-9
            rec["trigger_rate"].fill(times_s)
            rec["trigger_interval"].fill(_intervals_ms(result.last_trigger_s, times_s))
            if result.first_trigger_s is None:
                result.first_trigger_s = float(times_s[0])
            result.last_trigger_s = float(times_s[-1])
            result.n_events += chunk.n_events
    except rawformat.RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - uproot and the decompressors raise many kinds
        raise unreadable(path, exc) from None
    if residuals is not None:
        add_counts(rec["time_residual"], residuals[0])
    result.histograms = {calib.STAGE: histograms, reco.STAGE: rec}
    result.pmt_sums = sums
    result.events = {
        name: np.concatenate(parts) if parts else np.zeros(0, np.float32)
        for name, parts in events.items()
    }
    result.livetime_ns = result.n_events * detector.PRETRIGGER_WINDOW_NS
    result.kept = kept
    return result


def _intervals_ms(previous_s: float | None, times_s: np.ndarray) -> np.ndarray:
    """Times between consecutive triggers, ms, the first one from ``previous_s`` if known."""
    if previous_s is not None:
        times_s = np.concatenate(([previous_s], times_s))
    return np.diff(times_s) * 1e3


def _reconstruct(
    chunk: Any,
    calibrated: calib.CalibratedChunk,
    method: str,
    rec: dict[str, AnyHist],
    residuals: tuple[np.ndarray, float, float] | None,
    events: dict[str, list[np.ndarray]],
    masked: np.ndarray | None = None,
    used: np.ndarray | None = None,
    kept: list[keptevents.KeptEvent] | None = None,
) -> int:
    """Reconstruct the chunk's physics events (global triggers), fill the Rec histograms and add
    the events to ``events`` (columns of dqm.eventtable) and the chunk's candidates for the event
    display to ``kept``; returns the number of fits that did not converge. The ``masked`` PMTs
    (``used`` False) are left out of every step."""
    physics = chunk.trigger_type == rawformat.TRIGGER_GLOBAL
    if not physics.any():
        return 0
    vertex = reco.centroid_vertices(
        calibrated.moment, calibrated.signal_pe, reco.SIGNAL_WINDOW_NS, masked
    )
    not_converged = 0
    if method == "tlh":
        assert residuals is not None
        counts, lo, scale = residuals
        pmt, pe, time, nhits = chunk.pmt_id, calibrated.pe, calibrated.time, chunk.nhits
        if masked is not None and used is not None:
            keep = used[pmt]
            event = np.repeat(np.arange(nhits.size), nhits)[keep]
            pmt, pe, time = pmt[keep], pe[keep], time[keep]
            nhits = np.bincount(event, minlength=nhits.size)
        vertex, _, not_converged = tlh.fit_vertices(
            pmt,
            pe,
            time,
            nhits,
            vertex,
            fit=physics,
            residual_counts=counts,
            residual_binning=(lo, scale),
        )
    vertex = vertex[physics]
    energy = reco.energy_from_charge(
        calibrated.signal_pe[physics], vertex, window_ns=reco.SIGNAL_WINDOW_NS, masked=masked
    )
    good = np.isfinite(vertex).all(axis=1)
    vertex, energy = vertex[good], energy[good]
    events["x_mm"].append(vertex[:, 0].astype(np.float32))
    events["y_mm"].append(vertex[:, 1].astype(np.float32))
    events["z_mm"].append(vertex[:, 2].astype(np.float32))
    events["energy_mev"].append(energy.astype(np.float32))
    events["time_s"].append((chunk.trigger_time[physics][good] * 1e-9).astype(np.float32))
    if kept is not None:
        # Events are known by their id (a sampled chunk skips some); only those that could still
        # enter the set are candidates (most chunks have none or a few).
        position = np.flatnonzero(physics)[good]
        entries = np.asarray(chunk.event_id)[position]
        chosen = keptevents.could_enter(kept, entries, energy)
        if chosen.any():
            kept.extend(
                keptevents.select_events(
                    chunk.event_id,
                    chunk.pmt_id,
                    calibrated.pe,
                    calibrated.time,
                    chunk.nhits,
                    position[chosen],
                    vertex[chosen],
                    energy[chosen],
                    (chunk.trigger_time[physics][good] * 1e-9)[chosen],
                )
            )
    rec["energy"].fill(energy)
    rec["x"].fill(vertex[:, 0])
    rec["y"].fill(vertex[:, 1])
    rec["z"].fill(vertex[:, 2])
    rec["r3"].fill((np.linalg.norm(vertex, axis=1) / detector.LS_RADIUS_MM) ** 3)
    rec["rho2_z"].fill((vertex[:, 0] ** 2 + vertex[:, 1] ** 2) / 1e6, vertex[:, 2] / 1e3)
    return not_converged + int(np.count_nonzero(~good))


def _combine(parts: Iterator[FileResult]) -> FileResult:
    """The sum of consecutive ranges' results, in their order; the time between the last trigger
    of a range and the first of the next is added to the interval histogram."""
    total: FileResult | None = None
    for part in parts:
        if total is None:
            total = part
            continue
        for stage, by_name in part.histograms.items():
            for name, histogram in by_name.items():
                total.histograms[stage][name] += histogram
        for name, values in part.pmt_sums.items():
            total.pmt_sums[name] += values
        total.events = {
            name: np.concatenate((total.events[name], part.events[name])) for name in total.events
        }
        total.kept = keptevents.reduce_events([*total.kept, *part.kept])
        if part.first_trigger_s is not None:
            if total.last_trigger_s is not None:
                total.histograms[reco.STAGE]["trigger_interval"].fill(
                    (part.first_trigger_s - total.last_trigger_s) * 1e3
                )
            else:
                total.first_trigger_s = part.first_trigger_s
            total.last_trigger_s = part.last_trigger_s
        total.n_events += part.n_events
        total.n_read += part.n_read
        total.livetime_ns += part.livetime_ns
        total.fits_not_converged += part.fits_not_converged
    assert total is not None
    return total


def process_file(task: FileTask) -> FileResult:
    """Calibrate and reconstruct the events of a raw file (local, or ``root://``); every histogram
    and per-PMT sum.

    Its size is checked first and its adler32 while its events are processed (see
    :func:`~pipeline.stages.reading.verified`): results of a file that fails either are not
    returned.

    Raises:
        FileNotReady: the file is not there as announced (yet), or its server does not answer.
        RawFormatError: not a DQM raw file, or unreadable.
        ValueError: an unknown reconstruction method.
    """
    method = task.rec_method
    if method not in REC_METHODS:
        raise ValueError(
            f"unknown reconstruction method {method!r} (known: {', '.join(REC_METHODS)})."
        )
    with verified(task.file) as location:
        if location != task.file.path:  # a local copy of a remote file
            task = replace(task, file=replace(task.file, path=location))
        return _process(task, location)


def _process(task: FileTask, path: rawformat.RawLocation) -> FileResult:
    try:
        n_entries = count_events(path)
    except rawformat.RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - uproot raises many kinds for a foreign file
        raise unreadable(path, exc) from None
    step = RANGE_EVENTS
    ranges = [(start, min(start + step, n_entries)) for start in range(0, n_entries, step)]
    if not ranges:
        ranges = [(0, 0)]
    n_jobs = task.n_jobs
    if n_jobs == 1 or len(ranges) == 1:
        with reusing_freed_memory():
            result = _combine(_process_range(task, a, b) for a, b in ranges)
    else:
        backend = task.backend
        with joblib.parallel_config(backend=backend) if backend else contextlib.nullcontext():
            parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
            result = _combine(
                iter(parallel(joblib.delayed(process_range)(task, a, b) for a, b in ranges))
            )
    result.histograms[calib.STAGE].update(
        calib.derived_histograms(result.pmt_sums, result.n_events, result.livetime_ns)
    )
    result.titles = {**calib.TITLES, **reco.TITLES}
    return result
