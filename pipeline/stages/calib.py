"""The calibration stage: ADC to photo-electrons and hit times corrected by cable offsets, the Calib
histograms and the per-PMT statistics of a file.

Pure functions of their arguments, run in worker processes (no database). Everything this stage
stores is a sum over events — histograms and per-PMT sums — so a run's results are exactly the sum of
its files', and quantities that are not sums (rates, means) are derived from the summed statistics
(:func:`derived_histograms`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import hist
import numba
import numpy as np

from dqm import detector, pmtstats, rawformat
from dqm.histcodec import AnyHist
from dqm.pmtstats import PMT_ARRAYS
from pipeline.stages import reco
from pipeline.stages.fill import add_counts, count, counts_for

#: Stage name under which these histograms are stored.
STAGE = "calib"

__all__ = [
    "STAGE",
    "CalibConstants",
    "CalibratedChunk",
    "Sums",
    "calibrate_chunk",
    "derived_histograms",
    "merge_results",
]


@dataclass(frozen=True, eq=False)
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

    @functools.cached_property
    def inverse_gain(self) -> np.ndarray:
        """Photo-electrons per ADC count, (N,)."""
        return 1.0 / self.gain

    @classmethod
    def nominal(cls, n_pmts: int = detector.N_PMTS) -> CalibConstants:
        return cls(0, np.full(n_pmts, detector.NOMINAL_GAIN_ADC_PER_PE), np.zeros(n_pmts))


def calib_histograms() -> dict[str, AnyHist]:
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


#: Events with less charge than this (PE, dark noise included: about 3 MeV) whose charge centroid
#: lies within CENTRAL_CENTROID_MM of the centre (about a tenth of the events) light the PMTs evenly:
#: their signal hits give each PMT's gain and timing (see dqm.pmtstats).
LOW_ENERGY_MAX_PE = 6000.0
CENTRAL_CENTROID_MM = 6000.0


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


@numba.njit(cache=True, nogil=True)
def _calibrate_chunk(
    pmt: np.ndarray,
    adc: np.ndarray,
    tdc: np.ndarray,
    nhits: np.ndarray,
    inv_gain: np.ndarray,
    offset: np.ndarray,
    position: np.ndarray,
    pretrigger_ns: float,
    signal_window_ns: float,
    low_energy_max_pe: float,
    central_mm: float,
    used: np.ndarray,
    per_pmt: np.ndarray,
    counts: tuple[np.ndarray, np.ndarray, np.ndarray],
    binning: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the hits of a chunk (grouped by event).

    Returns the charge (PE) and calibrated time of every hit and, per event: the total charge, the
    charge in the signal window (``signal_window_ns`` from the first hit after the pre-trigger
    window) and the charge-weighted sum of the positions of the PMTs in it (3), from the PMTs that
    reconstruction uses only (``used``, one flag a PMT: the masked PMTs are left out; the first
    hit that opens the signal window, and which events are central, follow them too). Adds to
    ``per_pmt`` (N, 9) the hits, events fired, charge, time and pre-trigger hits of every PMT, and
    the hits in the signal window of central events (charge centroid within ``central_mm`` of the
    centre) below ``low_energy_max_pe``, their charge and their calibrated time (the last column
    is scratch), and the charge, hit time and first-hit residual of every hit to the
    three ``counts`` (``binning``: their starts and bins per unit, one row each).

    Raises:
        IndexError: a PMT id outside the calibration's range.
    """
    n_pmts = inv_gain.size
    charge_counts, time_counts, residual_counts = counts
    pe = np.empty(pmt.size, dtype=np.float64)
    time = np.empty(pmt.size, dtype=np.float64)
    total = np.zeros(nhits.size, dtype=np.float64)
    signal = np.zeros(nhits.size, dtype=np.float64)
    moment = np.zeros((nhits.size, 3), dtype=np.float64)
    last = per_pmt.shape[1] - 1
    per_pmt[:, last] = -1.0  # scratch: the last event in which each PMT fired
    start = 0
    for e in range(nhits.size):
        stop = start + nhits[e]
        first = np.inf
        event_total = 0.0
        for i in range(start, stop):
            p = pmt[i]
            if p < 0 or p >= n_pmts:
                raise IndexError("PMT id outside the calibration")
            q = adc[i] * inv_gain[p]
            t = tdc[i] - offset[p]
            pe[i] = q
            time[i] = t
            event_total += q

            per_pmt[p, 0] += 1.0
            if per_pmt[p, last] != e:
                per_pmt[p, last] = e
                per_pmt[p, 1] += 1.0
            per_pmt[p, 2] += q
            per_pmt[p, 3] += t
            count(charge_counts, q, binning[0, 0], binning[0, 1])
            count(time_counts, t, binning[1, 0], binning[1, 1])
            if t < pretrigger_ns:
                per_pmt[p, 4] += 1.0
            elif t < first and used[p]:
                first = t
        total[e] = event_total
        if first < np.inf:
            low_energy = event_total < low_energy_max_pe
            sx = sy = sz = sq = 0.0
            for i in range(start, stop):
                t = time[i]
                if t >= pretrigger_ns:
                    residual = t - first
                    count(residual_counts, residual, binning[2, 0], binning[2, 1])
                    p = pmt[i]
                    if residual <= signal_window_ns and used[p]:
                        q = pe[i]
                        sq += q
                        sx += q * position[p, 0]
                        sy += q * position[p, 1]
                        sz += q * position[p, 2]
            signal[e] = sq
            # A central low-energy event lights the PMTs evenly, with single photo-electrons and
            # about the same time of flight: its signal hits measure each PMT's gain and timing.
            if low_energy and sq > 0 and sx * sx + sy * sy + sz * sz < (central_mm * sq) ** 2:
                for i in range(start, stop):
                    t = time[i]
                    if t >= pretrigger_ns and t - first <= signal_window_ns:
                        p = pmt[i]
                        per_pmt[p, 5] += 1.0
                        per_pmt[p, 6] += pe[i]
                        per_pmt[p, 7] += t
            moment[e, 0] = sx
            moment[e, 1] = sy
            moment[e, 2] = sz
        start = stop
    return pe, time, total, signal, moment


@dataclass
class CalibratedChunk:
    """The calibrated hits of a chunk and the per-event sums the reconstruction starts from."""

    pe: np.ndarray
    time: np.ndarray
    signal_pe: np.ndarray  # charge in the signal window, per event
    moment: np.ndarray  # charge-weighted sum of PMT positions in the signal window, (n, 3), mm


def calibrate_chunk(
    chunk: Any,
    constants: CalibConstants,
    histograms: dict[str, AnyHist],
    sums: dict[str, np.ndarray],
    used: np.ndarray | None = None,
) -> CalibratedChunk:
    """Calibrate a chunk's hits, fill the Calib histograms and add to the per-PMT sums.

    ``used`` flags the PMTs reconstruction uses (default: all); the others, the masked ones, still
    fill the histograms and their sums, but not the events' signal charges and centroids.
    """
    n_pmts = len(constants.gain)
    if used is None:
        used = np.ones(n_pmts, dtype=np.bool_)
    per_pmt = np.zeros((n_pmts, len(PMT_ARRAYS) + 1))
    charge, charge_lo, charge_scale = counts_for(histograms["charge_pe"])
    times, time_lo, time_scale = counts_for(histograms["hit_time"])
    residuals, residual_lo, residual_scale = counts_for(histograms["first_hit_residual"])
    binning = np.array(
        [[charge_lo, charge_scale], [time_lo, time_scale], [residual_lo, residual_scale]]
    )
    try:
        pe, time, total, signal, moment = _calibrate_chunk(
            chunk.pmt_id,
            chunk.adc,
            chunk.tdc,
            chunk.nhits,
            constants.inverse_gain,
            constants.offset_ns,
            reco.pmt_positions(),
            detector.PRETRIGGER_WINDOW_NS,
            reco.SIGNAL_WINDOW_NS,
            LOW_ENERGY_MAX_PE,
            CENTRAL_CENTROID_MM,
            used,
            per_pmt,
            (charge, times, residuals),
            binning,
        )
    except IndexError:
        raise rawformat.RawFormatError(
            f"a hit has a PMT id outside 0..{n_pmts - 1} "
            f"(found {chunk.pmt_id.min()}..{chunk.pmt_id.max()})."
        ) from None
    block = per_pmt[:, : len(PMT_ARRAYS)].T
    add_counts(histograms["charge_pe"], charge)
    add_counts(histograms["hit_time"], times)
    add_counts(histograms["first_hit_residual"], residuals)
    histograms["total_pe"].fill(total)
    histograms["nhits"].fill(chunk.nhits)
    histograms["occupancy"].view()[:] += block[0]  # hits per PMT: the bins are the PMT ids
    for row, name in enumerate(PMT_ARRAYS):
        sums[name] += block[row]
    return CalibratedChunk(pe=pe, time=time, signal_pe=signal, moment=moment)


def derived_histograms(
    sums: Mapping[str, np.ndarray], n_events: int, livetime_ns: float
) -> dict[str, AnyHist]:
    """Histograms of per-PMT quantities that are not sums: hit rate and dark rate of every PMT."""
    dark: AnyHist = hist.Hist(hist.axis.Regular(150, 0, 150, name="rate", label="dark rate [kHz]"))
    rate: AnyHist = hist.Hist(
        hist.axis.Regular(100, 0, 1, name="rate", label="fraction of events with a hit")
    )
    if n_events:
        rate.fill(pmtstats.hit_rate(sums["fired_events"], n_events))
    if livetime_ns:
        dark.fill(pmtstats.dark_rate_hz(sums["dark_count"], livetime_ns) / 1e3)
    return {"dark_rate": dark, "hit_rate": rate}


@dataclass(frozen=True, eq=False)
class Sums:
    """Everything a file or a run adds up to: histograms by stage and name, per-PMT sums
    (:data:`dqm.pmtstats.PMT_ARRAYS`), events used and live time (ns)."""

    histograms: dict[str, dict[str, AnyHist]]
    pmt_sums: dict[str, np.ndarray]
    n_events: int
    livetime_ns: float


def merge_results(parts: Iterable[Sums]) -> Sums:
    """The sum of several files' histograms and per-PMT sums; derived histograms recomputed."""
    merged: dict[str, dict[str, AnyHist]] = {}
    sums: dict[str, np.ndarray] = {}
    n_events = 0
    livetime = 0.0
    for part in parts:
        for stage, histograms in part.histograms.items():
            target = merged.setdefault(stage, {})
            for name, histogram in histograms.items():
                if name in target:
                    target[name] += histogram
                else:
                    target[name] = histogram.copy()
        for name, values in part.pmt_sums.items():
            if name in sums:
                sums[name] += values
            else:
                sums[name] = values.copy()
        n_events += part.n_events
        livetime += part.livetime_ns
    if sums:
        merged.setdefault(STAGE, {}).update(derived_histograms(sums, n_events, livetime))
    return Sums(histograms=merged, pmt_sums=sums, n_events=n_events, livetime_ns=livetime)
