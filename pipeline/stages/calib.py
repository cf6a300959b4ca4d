"""The calibration stage: ADC to photo-electrons and hit times corrected by cable offsets, the Calib
histograms and the per-PMT statistics of a file.

Pure functions of their arguments, run in worker processes (no database). Everything this stage
stores is a sum over events — histograms and per-PMT sums — so a run's results are exactly the sum of
its files', and quantities that are not sums (rates, means) are derived from the summed statistics
(:func:`derived_histograms`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist
import numba
import numpy as np

from dqm import detector, rawformat
from dqm.db.queries import PMT_ARRAYS
from pipeline.stages import reco
from pipeline.stages.reading import iterate_events, verify_file

#: Stage name under which these histograms are stored.
STAGE = "calib"

__all__ = [
    "STAGE",
    "CalibConstants",
    "FileResult",
    "derived_histograms",
    "process_file",
]


@dataclass(frozen=True)
class CalibConstants:
    """Per-PMT constants applied to the hits.

    Attributes:
        version: calibration version in the database; 0 for the nominal constants (no calibration
            stored yet: the nominal gain for every PMT, no offsets).
        gain: ADC counts per photo-electron, (N,).
        offset_ns: cable offsets, (N,).
    """

    version: int
    gain: np.ndarray
    offset_ns: np.ndarray

    @classmethod
    def nominal(cls, n_pmts: int = detector.N_PMTS) -> CalibConstants:
        return cls(0, np.full(n_pmts, detector.NOMINAL_GAIN_ADC_PER_PE), np.zeros(n_pmts))


def calib_histograms() -> dict[str, hist.Hist]:
    """The empty Calib histograms, by name."""
    n = detector.N_PMTS
    return {
        "charge_pe": hist.Hist(
            hist.axis.Regular(200, 0, 20, name="charge", label="charge per hit [PE]")
        ),
        "total_pe": hist.Hist(
            hist.axis.Regular(400, 0, 20_000, name="total_pe", label="total charge per event [PE]")
        ),
        "nhits": hist.Hist(hist.axis.Regular(250, 0, 25_000, name="nhits", label="hits per event")),
        "hit_time": hist.Hist(
            hist.axis.Regular(
                250, 0, detector.READOUT_WINDOW_NS, name="time", label="hit time [ns]"
            )
        ),
        "occupancy": hist.Hist(
            hist.axis.Integer(0, n, name="pmt", label="PMT id", underflow=False, overflow=False)
        ),
        "first_hit_residual": hist.Hist(
            hist.axis.Regular(
                200,
                -50,
                350,
                name="residual",
                label="hit time minus the event's first signal hit [ns]",
            )
        ),
    }


#: Titles of the Calib histograms.
TITLES = {
    "charge_pe": "Charge per hit",
    "total_pe": "Total charge per event",
    "nhits": "Hits per event",
    "hit_time": "Hit time (calibrated)",
    "occupancy": "Hits per PMT",
    "first_hit_residual": "First-hit time residual",
    "dark_rate": "Dark-noise rate per PMT",
    "hit_rate": "Hit rate per PMT",
}


@dataclass
class FileResult:
    """What processing one file gives: histograms by stage and name, per-PMT sums, event counts."""

    n_events: int  # events used (after sampling)
    n_read: int  # events read
    histograms: dict[str, dict[str, hist.Hist]] = field(default_factory=dict)
    pmt_sums: dict[str, np.ndarray] = field(default_factory=dict)
    livetime_ns: float = 0.0
    titles: dict[str, str] = field(default_factory=dict)


@numba.njit(cache=True)
def _calibrate_chunk(
    pmt: np.ndarray,
    adc: np.ndarray,
    tdc: np.ndarray,
    nhits: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    pretrigger_ns: float,
    sums: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the hits of a chunk (grouped by event).

    Returns the charge (PE) and calibrated time of every hit, the residual of every signal hit to
    its event's first signal hit (NaN for pre-trigger hits), and the total charge of every event;
    adds the per-PMT sums into ``sums`` (rows: hits, events fired, charge, time, pre-trigger hits).

    Raises:
        IndexError: a PMT id outside the calibration's range.
    """
    n_pmts = gain.size
    pe = np.empty(pmt.size, dtype=np.float64)
    time = np.empty(pmt.size, dtype=np.float64)
    residual = np.empty(pmt.size, dtype=np.float64)
    total = np.zeros(nhits.size, dtype=np.float64)
    last_event = np.full(n_pmts, -1, dtype=np.int64)
    start = 0
    for e in range(nhits.size):
        stop = start + nhits[e]
        first = np.inf
        for i in range(start, stop):
            p = pmt[i]
            if p < 0 or p >= n_pmts:
                raise IndexError("PMT id outside the calibration")
            q = adc[i] / gain[p]
            t = tdc[i] - offset[p]
            pe[i] = q
            time[i] = t
            total[e] += q
            sums[0, p] += 1.0
            if last_event[p] != e:
                last_event[p] = e
                sums[1, p] += 1.0
            sums[2, p] += q
            sums[3, p] += t
            if t < pretrigger_ns:
                sums[4, p] += 1.0
            elif t < first:
                first = t
        for i in range(start, stop):
            residual[i] = time[i] - first if time[i] >= pretrigger_ns else np.nan
        start = stop
    return pe, time, residual, total


def process_file(params: Mapping[str, Any]) -> FileResult:
    """Calibrate the hits of a raw file and fill the Calib histograms and per-PMT sums.

    Args:
        params: ``path``, announced ``size`` and ``checksum``, ``run_id``, ``seq``,
            ``sampling_fraction`` and ``calibration`` (:class:`CalibConstants`).

    Raises:
        FileNotReady: the file is not there as announced.
        RawFormatError: not a DQM raw file, or unreadable.
    """
    path = Path(params["path"])
    verify_file(path, params.get("size"), params.get("checksum"))
    constants: CalibConstants = params["calibration"]
    n_pmts = len(constants.gain)
    histograms = calib_histograms()
    rec = reco.rec_histograms()
    sums = {name: np.zeros(n_pmts) for name in PMT_ARRAYS}
    n_events = n_read = 0
    previous_trigger = None
    try:
        for chunk in iterate_events(
            path,
            run_id=params["run_id"],
            seq=params["seq"],
            sampling_fraction=params.get("sampling_fraction", 1.0),
        ):
            n_read += chunk.n_read
            if not chunk.n_events:
                continue
            pe, residual = _fill(chunk, constants, histograms, sums, n_pmts)
            previous_trigger = _fill_rec(chunk, pe, residual, rec, previous_trigger)
            n_events += chunk.n_events
    except rawformat.RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - uproot and the decompressors raise many kinds
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise rawformat.RawFormatError(
            f"{path.name} cannot be read as ROOT: {detail[:300]}"
        ) from None
    livetime = n_events * detector.PRETRIGGER_WINDOW_NS
    derived = derived_histograms(sums, n_events, livetime)
    return FileResult(
        n_events=n_events,
        n_read=n_read,
        histograms={STAGE: {**histograms, **derived}, reco.STAGE: rec},
        pmt_sums=sums,
        livetime_ns=livetime,
        titles={**TITLES, **reco.TITLES},
    )


def _fill(
    chunk: Any,
    constants: CalibConstants,
    histograms: dict[str, hist.Hist],
    sums: dict[str, np.ndarray],
    n_pmts: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the Calib histograms and per-PMT sums of a chunk; returns the charge (PE) of every hit
    and its time after the event's first signal hit (NaN before the trigger)."""
    block = np.zeros((len(PMT_ARRAYS), n_pmts))
    try:
        pe, time, residual, total = _calibrate_chunk(
            chunk.pmt_id,
            chunk.adc,
            chunk.tdc,
            chunk.nhits,
            constants.gain,
            constants.offset_ns,
            detector.PRETRIGGER_WINDOW_NS,
            block,
        )
    except IndexError:
        raise rawformat.RawFormatError(
            f"a hit has a PMT id outside 0..{n_pmts - 1} (found {chunk.pmt_id.min()}..{chunk.pmt_id.max()})."
        ) from None
    histograms["charge_pe"].fill(pe)
    histograms["total_pe"].fill(total)
    histograms["nhits"].fill(chunk.nhits)
    histograms["hit_time"].fill(time)
    histograms["occupancy"].view()[:] += block[0]  # hits per PMT: the bins are the PMT ids
    histograms["first_hit_residual"].fill(residual[~np.isnan(residual)])
    for row, name in enumerate(PMT_ARRAYS):
        sums[name] += block[row]
    return pe, residual


def _fill_rec(
    chunk: Any,
    pe: np.ndarray,
    residual: np.ndarray,
    rec: dict[str, hist.Hist],
    previous_trigger: float | None,
) -> float:
    """Reconstruct the chunk's physics events (global triggers) and fill the Rec histograms."""
    physics = chunk.trigger_type == rawformat.TRIGGER_GLOBAL
    times_s = chunk.trigger_time * 1e-9
    rec["trigger_rate"].fill(times_s)
    intervals = np.diff(
        np.concatenate(([previous_trigger], times_s)) if previous_trigger is not None else times_s
    )
    rec["trigger_interval"].fill(intervals * 1e3)
    if physics.any():
        in_window = residual <= reco.SIGNAL_WINDOW_NS  # NaN (pre-trigger) compares false
        vertex, energy = reco.reconstruct_centroid(
            chunk.pmt_id, np.where(in_window, pe, 0.0), chunk.nhits, window_ns=reco.SIGNAL_WINDOW_NS
        )
        vertex, energy = vertex[physics], energy[physics]
        rec["energy"].fill(energy)
        rec["x"].fill(vertex[:, 0])
        rec["y"].fill(vertex[:, 1])
        rec["z"].fill(vertex[:, 2])
        rec["r3"].fill((np.linalg.norm(vertex, axis=1) / detector.LS_RADIUS_MM) ** 3)
        rec["rho2_z"].fill((vertex[:, 0] ** 2 + vertex[:, 1] ** 2) / 1e6, vertex[:, 2] / 1e3)
    return float(times_s[-1])


def derived_histograms(
    sums: Mapping[str, np.ndarray], n_events: int, livetime_ns: float
) -> dict[str, hist.Hist]:
    """Histograms of per-PMT quantities that are not sums: hit rate and dark rate of every PMT."""
    dark = hist.Hist(hist.axis.Regular(150, 0, 150, name="rate", label="dark rate [kHz]"))
    rate = hist.Hist(
        hist.axis.Regular(100, 0, 1, name="rate", label="fraction of events with a hit")
    )
    if n_events:
        rate.fill(sums["fired_events"] / n_events)
    if livetime_ns:
        dark.fill(sums["dark_count"] / (livetime_ns * 1e-9) / 1e3)
    return {"dark_rate": dark, "hit_rate": rate}


def merge_results(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several files' histograms and per-PMT sums; derived histograms recomputed."""
    merged: dict[str, dict[str, hist.Hist]] = {}
    sums: dict[str, np.ndarray] = {}
    n_events = 0
    livetime = 0.0
    for part in parts:
        for stage, histograms in part["histograms"].items():
            target = merged.setdefault(stage, {})
            for name, histogram in histograms.items():
                target[name] = histogram.copy() if name not in target else target[name] + histogram
        for name, values in part["pmt_sums"].items():
            sums[name] = values.copy() if name not in sums else sums[name] + values
        n_events += part["n_events"]
        livetime += part["livetime_ns"]
    if sums:
        merged.setdefault(STAGE, {}).update(derived_histograms(sums, n_events, livetime))
    return {"histograms": merged, "pmt_sums": sums, "n_events": n_events, "livetime_ns": livetime}
