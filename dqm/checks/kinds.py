"""The judgements of the check kinds, as pure functions of what they judge and their limits.

Each gives an :class:`Outcome`: a quality, one sentence with the numbers, and the statistics it
rested on. Too few statistics give TooFew, never Good; a missing reference gives Unknown.

- :func:`histogram_vs_reference`: a histogram's shape against the reference run's (χ² or
  Kolmogorov–Smirnov): Warning or Bad below a p-value, if the difference is also a real one (an
  effect size at least ``min_effect``, see :mod:`dqm.checks.shapes`).
- :func:`histogram_mean_in_range`: a histogram's mean inside a Warning band and a Bad band.
- :func:`contents_in_range`: the fraction of a histogram's entries outside [low, high].
- :func:`variable_in_band`: an analysis variable inside a Warning band and a Bad band.
- :func:`variable_vs_history`: an analysis variable within k σ of the median of earlier Good runs.
- :func:`pmt_classes`: dead, hot and noisy PMTs, and those newly so against the reference.
- :func:`sectors_vs_reference`: a per-PMT quantity by sector against the reference (a gain drift,
  a time shift in part of the detector).
- :func:`processing`: failed files, jobs to check, slow files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dqm.analyses.api import unit_suffix
from dqm.checks.quality import SEVERITY, Quality
from dqm.checks.shapes import compare_shapes

__all__ = [
    "Band",
    "Outcome",
    "contents_in_range",
    "histogram_mean_in_range",
    "histogram_vs_reference",
    "pmt_classes",
    "processing",
    "sectors_vs_reference",
    "variable_in_band",
    "variable_vs_history",
]


@dataclass(frozen=True)
class Outcome:
    """What a check found.

    Attributes:
        quality: Good, Warning, Bad, TooFew or Unknown.
        sentence: one sentence with the numbers (what was measured, against what, the limit).
        statistics: the entries, events or runs the judgement rested on.
        reference_run: the reference run compared with, if any.
        details: numbers for the dashboard (JSON-able).
    """

    quality: Quality
    sentence: str
    statistics: float | None = None
    reference_run: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Band:
    """The values that are fine: ``[low, high]`` (either side may be open, None)."""

    low: float | None = None
    high: float | None = None

    def __contains__(self, value: object) -> bool:
        number = float(value)  # type: ignore[arg-type]
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )

    def __str__(self) -> str:
        if self.low is None:
            return f"≤ {self.high:g}"
        if self.high is None:
            return f"≥ {self.low:g}"
        return f"[{self.low:g}, {self.high:g}]"


def _judge_bands(value: float, warning: Band, bad: Band) -> Quality:
    if value not in bad:
        return Quality.BAD
    if value not in warning:
        return Quality.WARNING
    return Quality.GOOD


def _weights(counts: npt.ArrayLike, min_entries: float) -> tuple[np.ndarray, Outcome | None]:
    """A histogram's contents as float64, and TooFew if they hold fewer than ``min_entries``."""
    weights = np.asarray(counts, dtype=np.float64)
    return weights, _too_few(float(weights.sum()), min_entries, "entries")


def _too_few(have: float, need: float, what: str) -> Outcome | None:
    if have < need:
        return Outcome(
            Quality.TOOFEW,
            f"{have:,.0f} {what}; the check needs {need:,.0f}.",
            statistics=have,
        )
    return None


def histogram_vs_reference(
    counts: npt.ArrayLike,
    reference: npt.ArrayLike | None,
    *,
    reference_run: int | None,
    method: str = "chi2",
    warning_p: float = 1e-3,
    bad_p: float = 1e-6,
    min_effect: float = 0.0,
    min_entries: float = 1000,
) -> Outcome:
    """A histogram's shape against its reference's.

    Args:
        counts: the run's bin contents.
        reference: the reference run's (None: no reference).
        reference_run: the reference's run number.
        method: ``chi2`` or ``ks``.
        warning_p, bad_p: Warning below ``warning_p``, Bad below ``bad_p``.
        min_effect: the smallest effect size that counts as a difference (0: any significant one).
        min_entries: below this many entries in the run (or its reference) the check cannot judge.
    """
    n = float(np.sum(counts))
    too_few = _too_few(n, min_entries, "entries")
    if too_few is not None:
        return too_few
    if reference is None or reference_run is None:
        return Outcome(Quality.UNKNOWN, "no reference run to compare with.", statistics=n)
    n_ref = float(np.sum(reference))
    if n_ref < min_entries:
        return Outcome(
            Quality.UNKNOWN,
            f"the reference run {reference_run} has {n_ref:,.0f} entries; the check needs "
            f"{min_entries:,.0f}.",
            statistics=n,
            reference_run=reference_run,
        )
    comparison = compare_shapes(counts, reference, method)
    real = comparison.effect >= min_effect
    if real and comparison.p_value < bad_p:
        quality, limit = Quality.BAD, f"Bad below p = {bad_p:g}"
    elif real and comparison.p_value < warning_p:
        quality, limit = Quality.WARNING, f"Warning below p = {warning_p:g}, Bad below {bad_p:g}"
    else:
        quality, limit = Quality.GOOD, f"Warning below p = {warning_p:g}"
    effect = f", effect {comparison.effect:.2g} (counts from {min_effect:g})" if min_effect else ""
    return Outcome(
        quality,
        f"{comparison.describe().replace(' (p', f' against run {reference_run} (p')}{effect}; "
        f"{limit}.",
        statistics=n,
        reference_run=reference_run,
        details={
            "method": comparison.method,
            "statistic": comparison.statistic,
            "ndf": comparison.ndf,
            "p_value": comparison.p_value,
            "effect": comparison.effect,
            "reference_entries": n_ref,
        },
    )


def histogram_mean_in_range(
    centers: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    warning: Band,
    bad: Band,
    min_entries: float = 100,
    unit: str = "",
) -> Outcome:
    """A histogram's mean (of its bin centres, weighted by the contents) inside the bands."""
    weights, too_few = _weights(counts, min_entries)
    if too_few is not None:
        return too_few
    n = float(weights.sum())
    x = np.asarray(centers, dtype=np.float64)
    mean = float(np.sum(weights * x) / n)
    spread = float(np.sqrt(np.sum(weights * (x - mean) ** 2) / n))
    error = spread / math.sqrt(n)
    quality = _judge_bands(mean, warning, bad)
    return Outcome(
        quality,
        f"mean {mean:.4g} ± {error:.2g}{unit_suffix(unit)} over {n:,.0f} entries; Good in "
        f"{warning}, Bad outside {bad}.",
        statistics=n,
        details={"mean": mean, "error": error},
    )


def contents_in_range(
    centers: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    low: float,
    high: float,
    warning_fraction: float,
    bad_fraction: float,
    min_entries: float = 100,
) -> Outcome:
    """The fraction of a histogram's entries whose bin centres lie outside ``[low, high]``."""
    weights, too_few = _weights(counts, min_entries)
    if too_few is not None:
        return too_few
    n = float(weights.sum())
    x = np.asarray(centers, dtype=np.float64)
    outside = float(weights[(x < low) | (x > high)].sum()) / n
    if outside > bad_fraction:
        quality = Quality.BAD
    elif outside > warning_fraction:
        quality = Quality.WARNING
    else:
        quality = Quality.GOOD
    return Outcome(
        quality,
        f"{100 * outside:.3g}% of {n:,.0f} entries outside [{low:g}, {high:g}]; Warning above "
        f"{100 * warning_fraction:g}%, Bad above {100 * bad_fraction:g}%.",
        statistics=n,
        details={"fraction_outside": outside},
    )


def variable_in_band(
    value: float | None,
    error: float | None,
    *,
    variable: str,
    unit: str,
    warning: Band,
    bad: Band,
) -> Outcome:
    """An analysis variable inside its Warning and Bad bands (Unknown if it was not measured)."""
    if value is None or not math.isfinite(value):
        return Outcome(Quality.UNKNOWN, f"{variable} was not measured for this run.")
    quality = _judge_bands(value, warning, bad)
    spread = f" ± {error:.2g}" if error is not None else ""
    measured = f"{value:.5g}{spread}{unit_suffix(unit)}"
    return Outcome(
        quality,
        f"{variable} = {measured}; Good in {warning}, Bad outside {bad}.",
        details={"value": value, "error": error},
    )


def variable_vs_history(
    value: float | None,
    error: float | None,
    history: Sequence[float],
    *,
    variable: str,
    unit: str,
    warning_sigma: float = 3.0,
    bad_sigma: float = 5.0,
    min_history: int = 5,
) -> Outcome:
    """An analysis variable against the median of the same variable in earlier Good runs.

    The spread of the history (1.4826 times its median absolute deviation, robust to the odd
    outlier) and the value's own error, added in quadrature, make σ. Change detection: a drift
    that no fixed band catches stands out against the runs before it.
    """
    if value is None or not math.isfinite(value):
        return Outcome(Quality.UNKNOWN, f"{variable} was not measured for this run.")
    past = np.asarray([v for v in history if math.isfinite(v)], dtype=np.float64)
    too_few = _too_few(len(past), min_history, "earlier Good runs")
    if too_few is not None:
        return too_few
    median = float(np.median(past))
    spread = 1.4826 * float(np.median(np.abs(past - median)))
    sigma = math.hypot(spread, error or 0.0)
    if sigma == 0:
        deviation = 0.0 if value == median else math.inf
    else:
        deviation = abs(value - median) / sigma
    if deviation > bad_sigma:
        quality = Quality.BAD
    elif deviation > warning_sigma:
        quality = Quality.WARNING
    else:
        quality = Quality.GOOD
    return Outcome(
        quality,
        f"{variable} = {value:.5g}{unit_suffix(unit)} is {deviation:.2g} σ from the median "
        f"{median:.5g} of the last {len(past)} Good runs (σ = {sigma:.2g}); Warning above "
        f"{warning_sigma:g} σ, Bad above {bad_sigma:g} σ.",
        statistics=len(past),
        details={"median": median, "sigma": sigma, "deviation_sigma": deviation},
    )


def _level(value: float, warning: float, bad: float) -> Quality:
    """Bad above ``bad``, Warning above ``warning``, else Good (counts: above, not at)."""
    if value > bad:
        return Quality.BAD
    if value > warning:
        return Quality.WARNING
    return Quality.GOOD


def _ids(mask: npt.NDArray[np.bool_], limit: int = 200) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:limit]]


def pmt_classes(
    classes: Mapping[str, npt.NDArray[np.bool_]],
    reference: Mapping[str, npt.NDArray[np.bool_]] | None,
    *,
    reference_run: int | None,
    n_events: float,
    limits: Mapping[str, float],
    cuts: str,
    min_events: float = 1000,
) -> Outcome:
    """Counts of dead, hot and noisy PMTs, and of those newly so against the reference run.

    Args:
        classes: for ``dead``, ``hot`` and ``noisy``, which PMTs of the run are so.
        reference: the same for the reference run, classified under the same cuts (None: no
            reference; the counts are judged alone).
        reference_run: the reference's run number.
        n_events: the events the classification rests on (below ``min_events``: TooFew).
        limits: ``dead_warning``, ``dead_bad``, ``new_dead_warning``... (above: Warning, Bad).
        cuts: the cuts used, in words, for the sentence.
    """
    too_few = _too_few(n_events, min_events, "events")
    if too_few is not None:
        return too_few
    worst_quality, parts, reasons = Quality.GOOD, [], []
    details: dict[str, Any] = {"cuts": cuts}
    for name in ("dead", "hot", "noisy"):
        mask = classes[name]
        count = int(mask.sum())
        details[f"n_{name}"] = count
        details[f"{name}_ids"] = _ids(mask)
        quality = _level(count, limits[f"{name}_warning"], limits[f"{name}_bad"])
        text = f"{count} {name}"
        if reference is not None:
            new = mask & ~reference[name]
            n_new = int(new.sum())
            details[f"n_new_{name}"] = n_new
            details[f"new_{name}_ids"] = _ids(new)
            new_quality = _level(n_new, limits[f"new_{name}_warning"], limits[f"new_{name}_bad"])
            if n_new:
                shown = ", ".join(str(i) for i in _ids(new, 8)) + (", …" if n_new > 8 else "")
                text += f" ({n_new} new: {shown})"
            if SEVERITY[new_quality] > SEVERITY[quality]:
                quality = new_quality
        if quality != Quality.GOOD:
            reasons.append(name)
        if SEVERITY[quality] > SEVERITY[worst_quality]:
            worst_quality = quality
        parts.append(text)
    against = (
        f" against run {reference_run}"
        if reference is not None
        else " (no reference run: new ones not judged)"
    )
    limit_text = (
        f"Bad above {limits['dead_bad']:g} dead, {limits['hot_bad']:g} hot, "
        f"{limits['noisy_bad']:g} noisy"
        + (
            f" or {limits['new_dead_bad']:g}, {limits['new_hot_bad']:g}, "
            f"{limits['new_noisy_bad']:g} new ones"
            if reference is not None
            else ""
        )
    )
    details["reasons"] = reasons
    return Outcome(
        worst_quality,
        f"{', '.join(parts)} PMTs in {n_events:,.0f} events{against}; {limit_text}.",
        statistics=n_events,
        reference_run=reference_run if reference is not None else None,
        details=details,
    )


def sectors_vs_reference(
    values: npt.ArrayLike,
    reference: npt.ArrayLike | None,
    sector: npt.ArrayLike,
    *,
    reference_run: int | None,
    quantity: str,
    relative: bool,
    n_events: float,
    min_sigma: float,
    warning_effect: float,
    bad_effect: float,
    min_events: float = 1000,
    unit: str = "",
    dipole_phi: int = 0,
) -> Outcome:
    """Each sector's per-PMT mean of a quantity against the reference run's, the other sectors
    aside: the change of each PMT (ratio to, or shift from, its value in the reference), averaged
    over the sector, minus what the other sectors make of it (so that a change of the whole
    detector does not count here), with its error from the spread of the sector's PMTs.

    What the other sectors make of it is their median; with ``dipole_phi`` (the sectors are that
    many slices in φ, then bands in θ), a constant plus a dipole in φ fitted to each band's
    sectors, the sector itself left out: events gathered on one side of the detector in one run
    (its vertices fluctuate) change the light and the times of flight smoothly around it, which a
    dipole takes away and a broken sector does not.

    A sector is Warning or Bad when its change is both significant (``min_sigma`` errors) and
    large (``warning_effect``, ``bad_effect``: a fraction for ratios, the unit for shifts): the
    effect, not the significance, sets the level, so the check says the same at any sampling.

    Args:
        values, reference: the quantity per PMT (NaN: not measured) in the run and the reference.
        sector: each PMT's sector (an integer from 0; -1: in none).
        n_events: the run's events (below ``min_events``: TooFew).
    """
    too_few = _too_few(n_events, min_events, "events")
    if too_few is not None:
        return too_few
    if reference is None or reference_run is None:
        return Outcome(Quality.UNKNOWN, "no reference run to compare with.", statistics=n_events)
    run = np.asarray(values, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    sectors = np.asarray(sector)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = run / ref - 1.0 if relative else run - ref
    used = np.isfinite(change) & (sectors >= 0) & (ref != 0 if relative else True)
    n_sectors = int(sectors.max()) + 1
    counts = np.bincount(sectors[used], minlength=n_sectors).astype(np.float64)
    sums = np.bincount(sectors[used], weights=change[used], minlength=n_sectors)
    squares = np.bincount(sectors[used], weights=change[used] ** 2, minlength=n_sectors)
    filled = counts >= 10
    if filled.sum() < 3:
        return Outcome(
            Quality.UNKNOWN,
            f"too few PMTs with {quantity} in both runs to compare sectors.",
            statistics=n_events,
            reference_run=reference_run,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums / counts
        error = np.sqrt(np.maximum(squares / counts - mean**2, 0.0) / np.maximum(counts - 1, 1))
    effect = np.where(filled, mean - _smooth(mean, filled, dipole_phi), 0.0)
    significance = np.where(filled & (error > 0), np.abs(effect) / np.where(error > 0, error, 1), 0)
    significant = significance >= min_sigma
    size = np.abs(effect)
    worst_sector = int(np.argmax(np.where(significant, size, -1.0)))
    if not significant.any():
        worst_sector = int(np.argmax(size))
    scale, suffix = (100.0, "%") if relative else (1.0, unit_suffix(unit).strip() or "")
    shown = effect[worst_sector] * scale
    quality = Quality.GOOD
    if significant[worst_sector] and size[worst_sector] >= bad_effect:
        quality = Quality.BAD
    elif significant[worst_sector] and size[worst_sector] >= warning_effect:
        quality = Quality.WARNING
    flagged = [int(s) for s in np.flatnonzero(significant & (size >= warning_effect))]
    what = "changed by" if relative else "moved by"
    return Outcome(
        quality,
        f"{quantity} of sector {worst_sector} {what} {shown:+.3g}{suffix} against run "
        f"{reference_run}, the other sectors aside ({significance[worst_sector]:.1f} σ); "
        f"{len(flagged)} of {int(filled.sum())} sectors off; Warning from "
        f"{warning_effect * scale:g}{suffix}, Bad from {bad_effect * scale:g}{suffix} "
        f"(at {min_sigma:g} σ).",
        statistics=n_events,
        reference_run=reference_run,
        details={
            "quantity": quantity,
            "sectors": flagged,
            "worst_sector": worst_sector,
            "effect": float(effect[worst_sector]),
            "significance": float(significance[worst_sector]),
            "sector_effects": [float(e) for e in effect],
        },
    )


def _smooth(
    mean: npt.NDArray[np.float64], filled: npt.NDArray[np.bool_], dipole_phi: int
) -> npt.NDArray[np.float64]:
    """What each sector's change would be from the other sectors: their median, or a constant
    and a dipole in φ fitted to the other sectors of its θ band (leave-one-out)."""
    if dipole_phi < 4:
        return np.full(mean.shape, float(np.median(mean[filled])))
    expected = np.full(mean.shape, np.nan)
    n_bands = len(mean) // dipole_phi
    phi = (np.arange(dipole_phi) + 0.5) / dipole_phi * 2 * np.pi
    design = np.column_stack([np.ones(dipole_phi), np.cos(phi), np.sin(phi)])
    for band in range(n_bands):
        rows = slice(band * dipole_phi, (band + 1) * dipole_phi)
        values, use = mean[rows], filled[rows]
        for k in range(dipole_phi):
            others = use.copy()
            others[k] = False
            if others.sum() < 4:
                expected[rows.start + k] = np.median(values[use]) if use.any() else np.nan
                continue
            coef, *_ = np.linalg.lstsq(design[others], values[others], rcond=None)
            expected[rows.start + k] = float(design[k] @ coef)
    return expected


def processing(
    *,
    n_files: int,
    failed: int,
    tocheck: int,
    latency_s: Sequence[float],
    failed_warning: int,
    failed_bad: int,
    tocheck_warning: int,
    tocheck_bad: int,
    latency_warning_s: float,
    latency_bad_s: float,
) -> Outcome:
    """Failed files, jobs to check, and the slowest file's time from arrival to results."""
    if n_files == 0:
        return Outcome(Quality.TOOFEW, "no file of the run was announced yet.", statistics=0)
    slowest = max(latency_s, default=0.0)
    levels = [
        Quality.BAD
        if failed >= max(failed_bad, 1)
        else Quality.WARNING
        if failed >= max(failed_warning, 1)
        else Quality.GOOD,
        Quality.BAD
        if tocheck >= max(tocheck_bad, 1)
        else Quality.WARNING
        if tocheck >= max(tocheck_warning, 1)
        else Quality.GOOD,
        Quality.BAD
        if slowest > latency_bad_s
        else Quality.WARNING
        if slowest > latency_warning_s
        else Quality.GOOD,
    ]
    quality = max(levels, key=SEVERITY.__getitem__)
    done = len(latency_s)
    return Outcome(
        quality,
        f"{failed} failed and {tocheck} to check of {n_files} files; {done} done, the slowest "
        f"{slowest:,.0f} s after its arrival; Bad from {failed_bad} failed, {tocheck_bad} to "
        f"check or {latency_bad_s:g} s.",
        statistics=n_files,
        details={
            "failed": failed,
            "tocheck": tocheck,
            "slowest_s": slowest,
            "reasons": [
                name
                for name, level in zip(("failed", "tocheck", "latency"), levels, strict=True)
                if level != Quality.GOOD
            ],
        },
    )
