"""Peak fits shared by the built-in analyses: an unbinned maximum-likelihood fit of a Gaussian line
on a linear background in a window around the line.

Why unbinned: the stored energy histogram has 50 keV bins, as wide as the lines themselves
(σ ≈ 30-40 keV at 1.5-2.6 MeV), which would limit a peak position to a few per mille at best; the
event table holds every event's energy as a float, so the likelihood uses each event as it is.

Why a window and a linear background: under each line of the physics spectrum lie smooth
continua (beta spectra of ²¹⁰Bi and ⁸⁵Kr, the exponential of external gammas). Over ±2.5σ of a line
they are straight to a fraction of a per cent, so a straight line (its slope free) takes them into
account without a model of the whole spectrum. The window follows the fit: it is centred on the
fitted position and scaled to the fitted width, and the fit repeated until it stays put, so that a
detector whose energy scale has moved is fitted in the right place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

__all__ = ["NotEnoughEvents", "PeakFit", "find_peak", "fit_peak"]

#: Fewest events in a fit window for a fit to be tried: below this the position and width are
#: poorly defined and the likelihood may have no maximum inside the window.
MIN_WINDOW_EVENTS = 50


class NotEnoughEvents(ValueError):
    """The run has too few events for a fit (the analysis leaves the variable out)."""


@dataclass(frozen=True)
class PeakFit:
    """The result of :func:`fit_peak`, in the units of the values fitted.

    Attributes:
        mean: fitted position of the line.
        mean_error: its error (one standard deviation, from the likelihood's curvature).
        sigma: fitted width (standard deviation) of the line.
        sigma_error: its error.
        signal: events of the line, its whole Gaussian (the tails outside the window included).
        signal_error: its error (the fit's and the Poisson error of the window's events).
        window: the final fit window (low, high).
        n_window: events in that window.
    """

    mean: float
    mean_error: float
    sigma: float
    sigma_error: float
    signal: float
    signal_error: float
    window: tuple[float, float]
    n_window: int

    @property
    def resolution(self) -> float:
        """σ / mean."""
        return self.sigma / self.mean

    @property
    def resolution_error(self) -> float:
        """Error of σ / mean (the position's error is negligible beside the width's)."""
        return self.resolution * math.hypot(
            self.sigma_error / self.sigma, self.mean_error / self.mean
        )


def _phi(z: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    return np.asarray(0.5 * special.erfc(-np.asarray(z) / math.sqrt(2.0)), dtype=np.float64)


def _negative_log_likelihood(
    params: npt.NDArray[np.float64], x: npt.NDArray[np.float64], lo: float, hi: float
) -> float:
    """-log L of a Gaussian (fraction ``f`` of the window's events) on a straight line."""
    mean, sigma, fraction, slope = params
    if sigma <= 0:
        return math.inf
    half = 0.5 * (hi - lo)
    centre = 0.5 * (hi + lo)
    inside = float(_phi((hi - mean) / sigma) - _phi((lo - mean) / sigma))
    if inside <= 1e-12:
        return math.inf
    gauss = np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi) * inside)
    # A straight line normalised over the window; |slope| <= 1 keeps it positive there.
    line = (1.0 + slope * (x - centre) / half) / (2.0 * half)
    density = fraction * gauss + (1.0 - fraction) * line
    if np.any(density <= 0):
        return math.inf
    return float(-np.log(density).sum())


def _hessian(
    f: Callable[[npt.NDArray[np.float64]], float],
    at: npt.NDArray[np.float64],
    steps: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Central-difference Hessian of a scalar function of a parameter vector."""
    n = len(at)
    hessian = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            shifts = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                point = at.copy()
                point[i] += si * steps[i]
                point[j] += sj * steps[j]
                shifts.append(f(point))
            value = (shifts[0] - shifts[1] - shifts[2] + shifts[3]) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    return hessian


def _fit_window(
    values: npt.NDArray[np.float64], mean: float, sigma: float, lo: float, hi: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    x = values[(values >= lo) & (values < hi)]
    if len(x) < MIN_WINDOW_EVENTS:
        raise NotEnoughEvents(
            f"only {len(x)} events in the fit window {lo:.4g} to {hi:.4g}; a fit needs "
            f"{MIN_WINDOW_EVENTS}."
        )
    # Start: the Gaussian's share from the excess over the window's edges.
    start = np.array([mean, sigma, 0.5, 0.0])
    bounds = [(lo, hi), (0.2 * sigma, 3.0 * sigma), (0.0, 1.0), (-1.0, 1.0)]
    result = optimize.minimize(
        _negative_log_likelihood,
        start,
        args=(x, lo, hi),
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-12, "gtol": 1e-8},
    )
    best = np.asarray(result.x, dtype=np.float64)
    steps = np.array([1e-3 * sigma, 1e-3 * sigma, 1e-4, 1e-4])
    hessian = _hessian(lambda p: _negative_log_likelihood(p, x, lo, hi), best, steps)
    try:
        covariance = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
    except np.linalg.LinAlgError:
        raise NotEnoughEvents(
            f"no line found in the window {lo:.4g} to {hi:.4g} ({len(x)} events): the "
            "likelihood has no curvature there."
        ) from None
    return best, covariance, len(x)


def fit_peak(
    values: npt.ArrayLike,
    centre: float,
    sigma: float,
    *,
    window_sigma: float = 2.5,
    iterations: int = 4,
) -> PeakFit:
    """Fit one line: a Gaussian on a straight background, unbinned, in a window of ±``window_sigma``
    widths around it, the window moved to the fitted line until it stays put.

    Args:
        values: the values (energies, MeV, say), one an event.
        centre: where the line is expected.
        sigma: its expected width.
        window_sigma: half-width of the fit window in widths of the line.
        iterations: most fits (each recentres the window on the previous fit).

    Raises:
        NotEnoughEvents: fewer than :data:`MIN_WINDOW_EVENTS` events in the window, or no line
            found in it (a fitted width at its bound, a singular likelihood).
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    mean, width = float(centre), float(sigma)
    for _ in range(max(iterations, 1)):
        lo, hi = mean - window_sigma * width, mean + window_sigma * width
        best, covariance, n_window = _fit_window(x, mean, width, lo, hi)
        moved = abs(best[0] - mean)
        mean, width = float(best[0]), float(best[1])
        if moved < 0.02 * width:
            break
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    fraction, fraction_error = float(best[2]), float(errors[2])
    # The fitted width at a bound or a line of no events: nothing was found.
    at_bound = not 0.2 * sigma * 1.001 < width < 3.0 * sigma * 0.999
    if at_bound or fraction * n_window < 5 or not np.all(np.isfinite(errors)):
        raise NotEnoughEvents(
            f"no line found between {lo:.4g} and {hi:.4g} ({n_window} events; fitted width "
            f"{width:.3g}, line share {fraction:.2f})."
        )
    inside = float(_phi((hi - mean) / width) - _phi((lo - mean) / width))
    signal = fraction * n_window / inside
    # The window's count is itself Poisson: both errors add.
    signal_error = math.hypot(fraction_error * n_window, fraction * math.sqrt(n_window)) / inside
    return PeakFit(
        mean=mean,
        mean_error=float(errors[0]),
        sigma=width,
        sigma_error=float(errors[1]),
        signal=signal,
        signal_error=signal_error,
        window=(lo, hi),
        n_window=n_window,
    )


def find_peak(values: npt.ArrayLike, lo: float, hi: float, width: float) -> float:
    """Where the most values lie within ``lo`` to ``hi``: the centre of the densest interval of
    ``width`` (a start for :func:`fit_peak` when the scale may have moved).

    Raises:
        NotEnoughEvents: fewer than :data:`MIN_WINDOW_EVENTS` values in the range.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[(x >= lo) & (x < hi)]
    if len(x) < MIN_WINDOW_EVENTS:
        raise NotEnoughEvents(
            f"only {len(x)} events between {lo:.4g} and {hi:.4g}; a fit needs {MIN_WINDOW_EVENTS}."
        )
    # For every value, how many lie within [x, x + width): the densest such interval.
    ends = np.searchsorted(x, x + width)
    counts = ends - np.arange(len(x))
    best = int(np.argmax(counts))
    return float(np.median(x[best : ends[best]]))
