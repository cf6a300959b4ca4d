"""The vertex reconstruction (``reconstruction``): how often the time-likelihood fit converges, how
narrow the hit-time residuals are after it, and whether the vertices fill the volume evenly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from dqm import detector
from dqm.analyses.api import MissingInput, Result, RunView, Value
from dqm.analyses.builtin.common import not_measured

__all__ = ["core_width", "reconstruction"]

#: Fewest events for the vertex distribution's figures.
MIN_EVENTS = 20


#: Half-width of the window around the residual peak in which its core width is measured, ns:
#: wide enough for the transit-time spread of the NNVT PMTs (6 ns) and the fast scintillation
#: (4.6 ns), narrow enough to leave out the slow light and the flat dark hits.
CORE_HALF_WIDTH_NS = 20.0


def _window_weights(edges: npt.NDArray[np.float64], lo: float, hi: float) -> Any:
    """The fraction of each bin inside [lo, hi] (so that moments change smoothly with the window)."""
    return np.clip((np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)) / np.diff(edges), 0, 1)


def core_width(
    counts: npt.NDArray[np.float64],
    edges: npt.NDArray[np.float64],
    half_width: float = CORE_HALF_WIDTH_NS,
) -> tuple[float, float, float]:
    """Centre, width and the width's error of the core of a peaked histogram: the mean and standard
    deviation of the entries within ±``half_width`` of the centre, the window centred on its own
    mean (started at the fullest bin, moved until it stays put).

    A truncated standard deviation rather than a Gaussian fit: the residual distribution is not
    Gaussian (scintillation decay on the late side), and the truncated moment is linear in the
    entries, so a group of PMTs whose times moved widens it in proportion to its share of the hits.
    Its error is that of a standard deviation of as many independent entries.

    Raises:
        ValueError: no entries in the window.
    """
    centres = 0.5 * (edges[1:] + edges[:-1])
    centre = float(centres[int(np.argmax(counts))])
    for _ in range(20):
        weights = counts * _window_weights(edges, centre - half_width, centre + half_width)
        n = float(weights.sum())
        if n <= 0:
            raise ValueError("the residual histogram has no entry near its peak.")
        mean = float((weights * centres).sum() / n)
        moved = abs(mean - centre)
        centre = mean
        if moved < 1e-4:
            break
    # The bins' own width adds (bin width)²/12 to the variance of their centres; taken off.
    bin_variance = float(np.mean(np.diff(edges)) ** 2 / 12)
    variance = float((weights * (centres - centre) ** 2).sum() / n) - bin_variance
    width = math.sqrt(max(variance, 0.0))
    return centre, width, width / math.sqrt(2 * n)


def reconstruction(run: RunView, *, r3_max: float = 0.8) -> Result:
    """Convergence of the tlh fit, core width of the hit-time residual after it, and the vertex
    distribution: mean R³ (R over the scintillator radius), its uniformity, and mean z.

    - **convergence**: 1 - fits that did not converge / reconstructed events (tlh only; left out
      when the provenance does not say);
    - **residual core width**: the standard deviation of the merged ``time_residual`` histogram
      within ±20 ns of its peak (:func:`core_width`; tlh only);
    - **R³ uniformity**: events spread evenly in the volume are uniform in R³; the p-value of a
      Kolmogorov-Smirnov test of the vertices with R³ < ``r3_max`` (away from the edge, where the
      resolution spills vertices out of the sphere) against a uniform distribution.

    Raises:
        MissingInput: the event table was not loaded.
    """
    events = run.require_events()
    data: dict[str, Any] = {"events": len(events), "r3_max": r3_max}
    variables: dict[str, Value | float] = {}
    method = run.provenance.rec_method or run.run.rec_method
    not_converged = run.provenance.fits_not_converged
    if method == "tlh" and not_converged is not None and len(events):
        fraction = min(max(1.0 - not_converged / len(events), 0.0), 1.0)
        error = math.sqrt(fraction * (1.0 - fraction) / len(events))
        variables["convergence"] = Value(100 * fraction, 100 * error)
    else:
        not_measured(data, "convergence", f"not known for method {method!r}.")
    try:
        residual = run.histogram("rec", "time_residual")
    except MissingInput as exc:
        not_measured(data, "residual_core_width_ns", str(exc))
    else:
        counts = np.asarray(residual.values(), dtype=np.float64)
        if counts.sum() > 0:
            try:
                centre, width, error = core_width(counts, np.asarray(residual.axes[0].edges))
                variables["residual_core_width_ns"] = Value(width, error)
                data["residual_core_centre_ns"] = centre
            except ValueError as exc:
                not_measured(data, "residual_core_width_ns", str(exc))
        else:
            not_measured(data, "residual_core_width_ns", "the residual histogram is empty.")
    if len(events) < MIN_EVENTS:
        not_measured(data, "vertices", f"{len(events)} events; {MIN_EVENTS} needed.")
        return Result(variables=variables, data=data)
    x, y, z = (np.asarray(events.column(c), dtype=np.float64) for c in ("x_mm", "y_mm", "z_mm"))
    r3 = (np.sqrt(x**2 + y**2 + z**2) / detector.LS_RADIUS_MM) ** 3
    n = len(r3)
    variables["mean_r3"] = Value(float(r3.mean()), float(r3.std(ddof=1) / math.sqrt(n)))
    variables["mean_z_mm"] = Value(float(z.mean()), float(z.std(ddof=1) / math.sqrt(n)))
    inner = r3[r3 < r3_max] / r3_max
    data["events_inside_r3_max"] = len(inner)
    if len(inner) >= MIN_EVENTS:
        variables["r3_uniformity_p"] = float(stats.kstest(inner, "uniform").pvalue)
    else:
        not_measured(data, "r3_uniformity_p", f"{len(inner)} events below R³ = {r3_max}.")
    return Result(variables=variables, data=data)
