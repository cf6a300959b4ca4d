"""Gains and time offsets of every PMT from a laser run (isotropic flashes at the centre).

For each flash, the event time is found from its hits (median of hit time minus time of flight,
then the mean of the hits within ±30 ns of it, which leaves the dark hits out). A PMT's hits within
±40 ns of the event time are its laser hits; from them:

- **gain**: with the PMT's occupancy p (fraction of flashes with a laser hit), the mean number of
  photo-electrons is mu = -ln(1 - p), and a hit holds on average mu / (1 - e^-mu) of them (Poisson,
  at least one), so gain = mean ADC of the laser hits × (1 - e^-mu) / mu. The dark hits that fall
  in the window are subtracted first, as counted (with their charge) in a side band before the flash;
- **time offset**: the mean of (hit time - time of flight - event time), corrected for the earliest
  of several photo-electrons arriving early (with k photo-electrons the hit time is the first of k
  draws of the transit-time spread; the correction uses mu and the TTS of the PMT's type);
  offsets are defined up to a common constant, fixed by making their mean over the live PMTs zero.

PMTs with too few laser hits (dead, or switched off) are reported, not fitted: they keep the nominal
gain and no offset, with status 1 (dead). Pure functions; sums over chunks and files add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from dqm import detector
from dqm.rawformat import RawLocation, location_name
from pipeline.stages.reading import RawFile, iterate_events, verified

#: Half-widths of the windows around the event time, ns.
EVENT_WINDOW_NS = 30.0
HIT_WINDOW_NS = 40.0
#: The side band before the flash (residuals in ns) that measures the dark hits to subtract.
SIDEBAND_NS = (-250.0, -50.0)
#: A PMT with fewer laser hits than this fraction of the median PMT's is not fitted (dead).
DEAD_FRACTION = 0.05
#: PMT status codes stored with a calibration.
STATUS_GOOD, STATUS_DEAD = 0, 1


@numba.njit(cache=True)
def _laser_chunk(
    pmt: np.ndarray,
    adc: np.ndarray,
    tdc: np.ndarray,
    nhits: np.ndarray,
    flight_ns: float,
    sums: np.ndarray,
) -> int:
    """Add one chunk to the per-PMT sums; returns the events used.

    Rows of ``sums``: laser hits, their ADC sum, their residual sum, side-band (dark) hits, their
    ADC sum.
    """
    used = 0
    start = 0
    for e in range(nhits.size):
        stop = start + nhits[e]
        if stop - start < 20:
            start = stop
            continue
        times = tdc[start:stop] - flight_ns
        centre = np.median(times)
        total = 0.0
        count = 0
        for t in times:
            if abs(t - centre) < EVENT_WINDOW_NS:
                total += t
                count += 1
        event_time = total / count
        for i in range(start, stop):
            residual = tdc[i] - flight_ns - event_time
            p = pmt[i]
            if abs(residual) < HIT_WINDOW_NS:
                sums[0, p] += 1.0
                sums[1, p] += adc[i]
                sums[2, p] += residual
            elif SIDEBAND_NS[0] <= residual < SIDEBAND_NS[1]:
                sums[3, p] += 1.0
                sums[4, p] += adc[i]
        used += 1
        start = stop
    return used


@dataclass
class LaserSums:
    """Per-PMT sums of laser hits (they add over chunks and files)."""

    n_events: int
    sums: np.ndarray  # (5, N): see _laser_chunk

    def __add__(self, other: LaserSums) -> LaserSums:
        return LaserSums(self.n_events + other.n_events, self.sums + other.sums)


def laser_sums(file: RawFile) -> LaserSums:
    """The per-PMT laser sums of one raw file (local or ``root://``; its size and checksum verified
    as it is read, see :func:`~pipeline.stages.reading.verified`)."""
    with verified(file) as path:
        return _laser_sums(file, path)


def _laser_sums(file: RawFile, path: RawLocation) -> LaserSums:
    sums = np.zeros((5, detector.N_PMTS))
    flight = detector.PMT_RADIUS_MM / detector.LS_GROUP_VELOCITY_MM_PER_NS
    n_events = 0
    for chunk in iterate_events(path, run_id=file.run_id, seq=file.seq):
        if chunk.pmt_id.size and (chunk.pmt_id.min() < 0 or chunk.pmt_id.max() >= detector.N_PMTS):
            from dqm.rawformat import RawFormatError

            raise RawFormatError(
                f"{location_name(path)}: a hit has a PMT id outside 0..{detector.N_PMTS - 1}."
            )
        n_events += _laser_chunk(chunk.pmt_id, chunk.adc, chunk.tdc, chunk.nhits, flight, sums)
    return LaserSums(n_events, sums)


@dataclass(frozen=True)
class LaserCalibration:
    """Constants derived from a laser run."""

    gain: np.ndarray
    offset_ns: np.ndarray
    status: np.ndarray
    laser_hits: np.ndarray
    n_events: int

    @property
    def dead(self) -> np.ndarray:
        return np.flatnonzero(self.status == STATUS_DEAD)


#: Expected minimum of k standard normal numbers, k = 1..10.
_EXPECTED_MIN: npt.NDArray[np.float64] = np.array(
    [0.0, -0.56419, -0.84628, -1.02938, -1.16296, -1.26721, -1.35218, -1.42360, -1.48501, -1.53875]
)


def first_pe_bias(
    mu: npt.NDArray[np.float64], tts_sigma: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Mean shift (ns) of a hit's time when it is the first of k ~ Poisson(mu | k >= 1) photo-electrons."""
    k = np.arange(1, len(_EXPECTED_MIN) + 1)
    log_weights = (
        k[None, :] * np.log(np.maximum(mu, 1e-12))[:, None] - np.cumsum(np.log(k))[None, :]
    )
    # annotated: numpy's stubs lose the dtype along the broadcasting above
    weights: npt.NDArray[np.float64] = np.exp(log_weights - log_weights.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return tts_sigma * (weights @ _EXPECTED_MIN)


def fit(parts: Iterable[LaserSums]) -> LaserCalibration:
    """Gains and offsets from the summed laser hits of a run's files."""
    total = None
    for part in parts:
        total = part if total is None else total + part
    if total is None or total.n_events == 0:
        raise ValueError("the laser run has no usable flash (no event with 20 hits or more).")
    in_window, adc_in_window, residual_sum, sideband, adc_sideband = total.sums
    n = total.n_events
    # Dark hits fall in the laser window too: subtract what the side band before the flash says.
    scale = 2 * HIT_WINDOW_NS / (SIDEBAND_NS[1] - SIDEBAND_NS[0])
    hits = np.maximum(in_window - scale * sideband, 0.0)
    adc_sum = adc_in_window - scale * adc_sideband
    live = (
        hits >= DEAD_FRACTION * np.median(hits[hits > 0])
        if np.any(hits > 0)
        else np.zeros_like(hits, bool)
    )
    occupancy = np.clip(hits / n, 1e-12, 1 - 1e-9)
    mu = -np.log1p(-occupancy)
    gain = np.full(hits.size, detector.NOMINAL_GAIN_ADC_PER_PE)
    offset = np.zeros(hits.size)
    gain[live] = adc_sum[live] / hits[live] * (1 - np.exp(-mu[live])) / mu[live]
    pmts = detector.load_pmts()
    tts = np.where(
        pmts["type"].to_numpy() == "Hamamatsu",
        detector.TTS_SIGMA_NS["Hamamatsu"],
        detector.TTS_SIGMA_NS["NNVT"],
    )
    offset[live] = residual_sum[live] / in_window[live] - first_pe_bias(mu[live], tts[live])
    offset[live] -= offset[live].mean()
    status = np.where(live, STATUS_GOOD, STATUS_DEAD).astype(np.float64)
    return LaserCalibration(gain, offset, status, hits, n)
