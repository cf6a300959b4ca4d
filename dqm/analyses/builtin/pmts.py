"""The PMTs: their health (``pmt_health``), dark noise (``dark_rate``), gains and timing from the
laser (``laser_gain_timing``) and the light by azimuthal sector (``sector_occupancy``), from a run's
merged per-PMT sums.

Dead and hot PMTs are classified by hit rate (:func:`dqm.pmtclass.classify`), noisy ones by dark
rate (:func:`dqm.pmtclass.noisy`); the averages over PMTs use the good ones only (neither dead, hot
nor noisy), so that one broken PMT does not move a trend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from dqm import detector, pmtclass
from dqm.analyses.api import CalibrationInfo, PmtStatistics, Result, RunView, Value
from dqm.analyses.builtin.common import (
    PMT_TYPES,
    health,
    not_measured,
    phi_deg,
    type_masks,
)

__all__ = ["dark_rate", "laser_gain_timing", "pmt_health", "sector_occupancy"]

#: Fewest events for a classification by hit rate: with fewer, a good PMT (10 % hit rate) may not
#: fire at all by chance and would count as dead (0.9^200 ≈ 7e-10 a PMT).
MIN_EVENTS_TO_CLASSIFY = 200
#: Scale from the mean to the error of the median of a normal sample (√(π/2)).
_MEDIAN_ERROR = math.sqrt(math.pi / 2)


def _cuts(dead_cut: float | None, hot_cut: float | None) -> pmtclass.HitRateCuts:
    default = pmtclass.DEFAULT_CUTS
    return pmtclass.HitRateCuts(
        dead_cut=default.dead_cut if dead_cut is None else dead_cut,
        hot_cut=default.hot_cut if hot_cut is None else hot_cut,
        normal_band=default.normal_band,
    )


def pmt_health(
    run: RunView,
    *,
    dead_cut: float | None = None,
    hot_cut: float | None = None,
    min_events: int = MIN_EVENTS_TO_CLASSIFY,
) -> Result:
    """Dead, hot and noisy PMTs by type, their ids, and the fraction of live PMTs.

    Dead and hot by hit rate under the default cuts of :mod:`dqm.pmtclass` (or ``dead_cut`` and
    ``hot_cut``), noisy by dark rate (:func:`dqm.pmtclass.noisy`). Live PMTs are those not dead.
    With fewer than ``min_events`` events nothing is classified (the variables are left out).

    Raises:
        MissingInput: the run has no per-PMT statistics.
    """
    pmt = run.require_pmt()
    cuts = _cuts(dead_cut, hot_cut)
    data: dict[str, Any] = {"cuts": cuts.describe(), "noisy_factor": pmtclass.NOISY_FACTOR}
    if pmt.n_events < min_events:
        not_measured(
            data, "pmts", f"the run has {pmt.n_events} events; {min_events} are needed to classify."
        )
        return Result(data=data)
    pmts = health(pmt, cuts)
    variables: dict[str, Value | float] = {}
    for kind, mask in (("dead", pmts.dead), ("hot", pmts.hot), ("noisy", pmts.noisy)):
        variables[f"n_{kind}"] = int(mask.sum())
        for type_name, suffix in PMT_TYPES.items():
            variables[f"n_{kind}_{suffix}"] = int((mask & type_masks()[type_name]).sum())
        data[f"{kind}_ids"] = np.flatnonzero(mask).tolist()
    live = 1.0 - float(pmts.dead.mean())
    variables["live_fraction"] = Value(100 * live, None)
    return Result(variables=variables, data=data)


def dark_rate(run: RunView) -> Result:
    """Median and mean dark rate of the good PMTs of each type, from the pre-trigger window.

    The errors are those of the mean and median over the PMTs (their spread over √n), which hold
    both the Poisson error of each PMT's count and the true spread of the rates. The mean is
    unbiased whatever the counts; the median of few counts a PMT carries their Poisson skew and
    reads low: by ~1 % at 50 pre-trigger hits a PMT (20,000 events for a Hamamatsu PMT), ~4 % at 8.

    Raises:
        MissingInput: the run has no per-PMT statistics.
    """
    pmt = run.require_pmt()
    data: dict[str, Any] = {}
    if pmt.livetime_ns <= 0:
        not_measured(data, "dark_rate", "the run has no pre-trigger live time (no events).")
        return Result(data=data)
    good = health(pmt).good
    livetime_s = pmt.livetime_ns * 1e-9
    variables: dict[str, Value | float] = {}
    for type_name, suffix in PMT_TYPES.items():
        counts = pmt.sums["dark_count"][good & type_masks()[type_name]]
        if len(counts) < 2:
            not_measured(data, suffix, f"fewer than 2 good {type_name} PMTs.")
            continue
        values = counts / livetime_s
        error = float(values.std(ddof=1) / math.sqrt(len(values)))
        median = _grouped_median(counts) / livetime_s
        variables[f"median_{suffix}_hz"] = Value(median, _MEDIAN_ERROR * error)
        variables[f"mean_{suffix}_hz"] = Value(float(values.mean()), error)
        data[f"good_{suffix}"] = len(values)
    data["livetime_s"] = pmt.livetime_ns * 1e-9
    return Result(variables=variables, data=data)


def _grouped_median(counts: npt.NDArray[np.float64]) -> float:
    """Median of whole-number counts, interpolated within the count it falls on.

    With a few tens of pre-trigger hits a PMT the counts take few values, and the plain median
    jumps from one to the next (by 2 % at 50 hits); read as a histogram of unit bins, the median
    moves smoothly with the distribution.
    """
    below_median = float(np.floor(np.median(counts) + 0.5))
    below = np.count_nonzero(counts < below_median - 0.5)
    at = np.count_nonzero(np.abs(counts - below_median) < 0.5)
    if at == 0:
        return float(np.median(counts))
    return below_median - 0.5 + (0.5 * len(counts) - below) / at


def gain_ratio(pmt: PmtStatistics) -> npt.NDArray[np.float64]:
    """Each PMT's true gain over the gain of the calibration the run was processed with, from a
    laser run's sums (NaN where it cannot be measured).

    A flash of fixed intensity gives each PMT a Poisson number of photo-electrons, and its dark
    noise over the readout window adds another Poisson number; a hit's charge is the sum of its
    photo-electrons'. The probability of no hit in a flash is therefore e^-λ, λ the mean
    photo-electrons laser and dark together, so λ = -ln(1 - fired / n_events), and the mean charge
    per flash in calibrated photo-electrons, ``charge_sum / n_events``, is λ times the gain's
    ratio to the calibration's (a single photo-electron's mean charge is the gain).
    """
    n = pmt.n_events
    fired = pmt.sums["fired_events"]
    with np.errstate(divide="ignore", invalid="ignore"):
        occupancy = fired / n
        mean_pe = -np.log1p(-occupancy)
        ratio = pmt.sums["charge_sum"] / (n * mean_pe)
    # Never fired (no information) or fired in every flash (λ unbounded): not measured.
    ratio[(fired <= 0) | (fired >= n)] = np.nan
    return np.asarray(ratio, dtype=np.float64)


def _laser_time(pmt: PmtStatistics, calibration: CalibrationInfo) -> npt.NDArray[np.float64]:
    """Mean calibrated time of each PMT's laser hits, ns: the dark hits, spread uniformly over the
    readout window and counted in its pre-trigger part, taken off the per-PMT time sum."""
    window = detector.READOUT_WINDOW_NS
    dark_hits = pmt.sums["dark_count"] * window / detector.PRETRIGGER_WINDOW_NS
    offsets = calibration.time_offsets_ns
    dark_time = dark_hits * (0.5 * window - offsets)
    with np.errstate(divide="ignore", invalid="ignore"):
        laser = (pmt.sums["time_sum"] - dark_time) / (pmt.sums["hit_count"] - dark_hits)
    return np.asarray(laser, dtype=np.float64)


def _offset_noise_ns(
    pmt: PmtStatistics, laser_time: npt.NDArray[np.float64], used: npt.NDArray[np.bool_]
) -> float:
    """The typical error of a PMT's laser time that the dark hits' subtraction alone makes, ns:
    their Poisson number and the estimate of it from the pre-trigger window, at their distance in
    time from the laser hits, plus their spread over the window."""
    window = detector.READOUT_WINDOW_NS
    scale = window / detector.PRETRIGGER_WINDOW_NS
    dark_count = pmt.sums["dark_count"][used]
    dark_hits = dark_count * scale
    laser_hits = np.maximum(pmt.sums["hit_count"][used] - dark_hits, 1.0)
    lever = 0.5 * window - laser_time[used]
    variance = dark_hits * (lever**2 + window**2 / 12) + scale**2 * dark_count * lever**2
    return float(np.median(np.sqrt(variance) / laser_hits))


def _sectors(sector_deg: float) -> npt.NDArray[np.intp]:
    """The φ sector of each PMT, 0 from -180 degrees on."""
    n_sectors = round(360.0 / sector_deg)
    return np.minimum(((phi_deg() + 180.0) // sector_deg).astype(np.intp), n_sectors - 1)


def _robust_std(values: npt.NDArray[np.float64]) -> float:
    """Standard deviation from the median absolute deviation (outliers do not move it)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def laser_gain_timing(run: RunView, *, moved_fraction: float = 0.05) -> Result:
    """Gains and timing of the PMTs from a laser run, against the calibration the run was processed
    with: mean gain and spread by type, time-offset spread, and the PMTs whose gain moved.

    The gain of each PMT is measured by :func:`gain_ratio` relative to that calibration's gain
    (the charges were calibrated with it), so ``gain ratio × calibration gain`` is its gain in ADC
    counts per photo-electron, and ``|gain ratio - 1| > moved_fraction`` a gain that moved since
    that calibration. Each PMT's ratio has a statistical error of about
    ``1 / √(flashes × photo-electrons per flash)``: for a count at 5 % the run needs ~1 % per PMT,
    some 10,000 flashes at 0.1-1 photo-electron a PMT.

    Time offsets: the mean time of each PMT's laser hits (dark hits taken off), minus the median of
    its type (a laser at the centre lights all PMTs at once); their spread, robust against outliers,
    says how well the calibration's offsets still hold. The per-PMT sums cannot tell a dark hit
    from a laser hit, so the dark hits' subtraction makes each PMT's time noisy (~10 ns at 0.1
    photo-electron a flash, ~2 ns at 1; the noise expected is ``data["offset_noise_ns"]``): the
    spread is then that noise, and the mean over the PMTs of each 30° sector in φ
    (``offset_sector_max_ns``, the sector farthest from the others) is the sensitive figure.

    Args:
        run: the laser run (per-PMT sums and the calibration).
        moved_fraction: the relative change of gain that counts as moved.

    Raises:
        MissingInput: no per-PMT statistics or no calibration.
    """
    pmt = run.require_pmt()
    calibration = run.require_calibration()
    data: dict[str, Any] = {
        "calibration_version": calibration.version,
        "flashes": pmt.n_events,
        "moved_fraction": moved_fraction,
    }
    if pmt.n_events < MIN_EVENTS_TO_CLASSIFY:
        not_measured(
            data, "gains", f"the run has {pmt.n_events} flashes; {MIN_EVENTS_TO_CLASSIFY} needed."
        )
        return Result(data=data)
    pmts = health(pmt)
    ratio = gain_ratio(pmt)
    measured = pmts.good & np.isfinite(ratio)
    gain = ratio * calibration.gains
    variables: dict[str, Value | float] = {}
    laser_time = _laser_time(pmt, calibration)
    deviation = np.full(len(ratio), np.nan)
    for type_name, suffix in PMT_TYPES.items():
        of_type = measured & type_masks()[type_name]
        n = int(of_type.sum())
        if n < 2:
            not_measured(data, suffix, f"fewer than 2 measured {type_name} PMTs.")
            continue
        gains = gain[of_type]
        mean = float(gains.mean())
        spread = float(gains.std(ddof=1))
        variables[f"gain_mean_{suffix}"] = Value(mean, spread / math.sqrt(n))
        variables[f"gain_spread_{suffix}"] = Value(
            100 * spread / mean, 100 * spread / mean / math.sqrt(2 * (n - 1))
        )
        times = laser_time[of_type]
        deviation[of_type] = times - np.median(times)
    timed = np.isfinite(deviation)
    if timed.sum() >= 2:
        spread_ns = _robust_std(deviation[timed])
        variables["offset_spread_ns"] = Value(spread_ns, spread_ns / math.sqrt(2 * timed.sum()))
        data["offset_noise_ns"] = _offset_noise_ns(pmt, laser_time, timed)
        # Averaged over a sector's PMTs the noise falls by √1,500: a sector whose cables or
        # electronics moved in time shows there.
        sector = _sectors(30.0)
        counts = np.bincount(sector[timed], minlength=12)
        sums = np.bincount(sector[timed], weights=deviation[timed], minlength=12)
        with np.errstate(divide="ignore", invalid="ignore"):
            by_sector = sums / counts - deviation[timed].mean()
        worst = int(np.nanargmax(np.abs(by_sector)))
        variables["offset_sector_max_ns"] = Value(
            float(by_sector[worst]), float(_robust_std(deviation[timed]) / math.sqrt(counts[worst]))
        )
        data["offset_sector_ns"] = [round(float(v), 4) for v in by_sector]
    moved = measured & (np.abs(ratio - 1.0) > moved_fraction)
    variables["gain_moved"] = int(moved.sum())
    variables["gain_ratio_mean"] = Value(
        float(ratio[measured].mean()), float(ratio[measured].std() / math.sqrt(measured.sum()))
    )
    data["gain_moved_ids"] = np.flatnonzero(moved).tolist()
    data["measured_pmts"] = int(measured.sum())
    previous = run.previous_calibration
    if previous is not None and previous.version > 0 and len(previous.gains) == len(ratio):
        with np.errstate(divide="ignore", invalid="ignore"):
            change = calibration.gains / previous.gains - 1.0
        changed = pmts.good & (np.abs(change) > moved_fraction)
        variables["calibration_gain_changed"] = int(changed.sum())
        data["previous_calibration_version"] = previous.version
    return Result(variables=variables, data=data)


def sector_occupancy(run: RunView, *, sector_deg: float = 30.0) -> Result:
    """Hit rate and charge of the good PMTs by azimuthal sector, against the whole detector: the
    sector that deviates most.

    Each PMT's hit rate (fraction of events it fired in) and charge per event (PE, with the run's
    calibration) are first divided by the mean of its type, so that the types' different
    efficiencies and dark rates do not show; then averaged over the PMTs of each ``sector_deg``
    sector in φ. The hit rate follows the light and the dark noise; the charge follows the gains
    too, so a sector whose gains drifted stands out in charge only.

    Raises:
        MissingInput: the run has no per-PMT statistics.
    """
    pmt = run.require_pmt()
    data: dict[str, Any] = {"sector_deg": sector_deg}
    if pmt.n_events < MIN_EVENTS_TO_CLASSIFY:
        not_measured(
            data, "sectors", f"the run has {pmt.n_events} events; {MIN_EVENTS_TO_CLASSIFY} needed."
        )
        return Result(data=data)
    good = health(pmt).good
    n_sectors = round(360.0 / sector_deg)
    sector = _sectors(sector_deg)
    quantities = {
        "hit_rate": pmt.hit_rate,
        "charge": pmt.sums["charge_sum"] / pmt.n_events,
    }
    variables: dict[str, Value | float] = {}
    for name, per_pmt in quantities.items():
        relative = np.full(len(per_pmt), np.nan)
        for mask in type_masks().values():
            of_type = good & mask
            if of_type.any():
                relative[of_type] = per_pmt[of_type] / per_pmt[of_type].mean()
        used = np.isfinite(relative)
        counts = np.bincount(sector[used], minlength=n_sectors)
        sums = np.bincount(sector[used], weights=relative[used], minlength=n_sectors)
        squares = np.bincount(sector[used], weights=relative[used] ** 2, minlength=n_sectors)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sums / counts
            error = np.sqrt(np.maximum(squares / counts - mean**2, 0.0) / counts)
        overall = float(relative[used].mean())
        deviation = mean / overall - 1.0
        worst = int(np.nanargmax(np.abs(deviation)))
        variables[f"{name}_max_deviation"] = Value(
            100 * float(deviation[worst]), 100 * float(error[worst])
        )
        data[f"{name}_deviation_pct"] = [round(100 * float(d), 4) for d in deviation]
        data[f"{name}_worst_sector_deg"] = [
            -180.0 + worst * sector_deg,
            -180.0 + (worst + 1) * sector_deg,
        ]
    return Result(variables=variables, data=data)
