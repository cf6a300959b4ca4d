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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dqm.analyses.api import unit_suffix
from dqm.checks.quality import Quality
from dqm.checks.shapes import compare_shapes

__all__ = [
    "Band",
    "Outcome",
    "contents_in_range",
    "histogram_mean_in_range",
    "histogram_vs_reference",
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
