"""Compiled histogram filling: counts of regular bins kept in plain arrays inside the kernels that
compute the values (no intermediate per-hit arrays), added to ``hist`` histograms afterwards.

The counts arrays have the layout of ``Hist.view(flow=True)`` of a regular axis: underflow, the
bins, overflow. The bin of a value is found as boost-histogram finds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numba
import numpy as np

from dqm.histcodec import AnyHist

if TYPE_CHECKING:
    from boost_histogram.view import WeightedSumView


@numba.njit(cache=True, nogil=True, inline="always")
def count(counts: np.ndarray, value: float, lo: float, scale: float) -> None:
    """Add one entry at ``value`` to ``counts`` (underflow, ``counts.size - 2`` bins from ``lo`` of
    width ``1 / scale``, overflow)."""
    n = counts.size - 2
    z = (value - lo) * scale
    if z < 0.0:
        counts[0] += 1.0
    elif z >= n:
        counts[n + 1] += 1.0
    else:
        counts[int(z) + 1] += 1.0


def counts_for(histogram: AnyHist) -> tuple[np.ndarray, float, float]:
    """An empty counts array for a 1-D regular histogram, with the axis start and bins per unit."""
    axis = histogram.axes[0]
    lo, hi = float(axis.edges[0]), float(axis.edges[-1])
    return np.zeros(len(axis) + 2), lo, len(axis) / (hi - lo)


def add_counts(histogram: AnyHist, counts: np.ndarray) -> None:
    """Add a counts array (with flow bins) to a 1-D histogram of unit weights."""
    view = histogram.view(flow=True)
    if view.dtype.names:  # weighted storage: counts are also the sums of squared weights
        # (boost-histogram types the view of any storage as a plain array)
        weighted = cast("WeightedSumView", view)
        weighted["value"] += counts
        weighted["variance"] += counts
    else:
        view += counts
