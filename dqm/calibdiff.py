"""Comparing two versions of the per-PMT calibration (pure numpy): the PMTs whose gain moved by
more than a fraction, or whose time offset moved by more than some nanoseconds.

The calibrations page and its tests use it; the thresholds' defaults are the shifters' rule of
thumb: 5 % in gain, 1 ns in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["GAIN_TOLERANCE", "OFFSET_TOLERANCE_NS", "Moved", "moved_pmts"]

#: A gain that moved by more than this fraction is listed.
GAIN_TOLERANCE = 0.05
#: A time offset that moved by more than this many nanoseconds is listed.
OFFSET_TOLERANCE_NS = 1.0


@dataclass(frozen=True)
class Moved:
    """The PMTs that moved between two versions, and how much (arrays of one length)."""

    pmt_id: npt.NDArray[np.int64]
    gain_change: npt.NDArray[np.float64]  # relative: (new - old) / old
    offset_change_ns: npt.NDArray[np.float64]


def moved_pmts(
    old_gains: npt.ArrayLike,
    old_offsets: npt.ArrayLike,
    new_gains: npt.ArrayLike,
    new_offsets: npt.ArrayLike,
    *,
    gain_tolerance: float = GAIN_TOLERANCE,
    offset_tolerance_ns: float = OFFSET_TOLERANCE_NS,
) -> Moved:
    """The PMTs whose gain moved by more than ``gain_tolerance`` (relative) or whose offset moved
    by more than ``offset_tolerance_ns``; a PMT without a gain (0 or NaN) in one version counts
    as moved when it has one in the other.

    Raises:
        ValueError: the arrays differ in length.
    """
    g0, g1 = np.asarray(old_gains, float), np.asarray(new_gains, float)
    t0, t1 = np.asarray(old_offsets, float), np.asarray(new_offsets, float)
    if not g0.shape == g1.shape == t0.shape == t1.shape:
        raise ValueError("the two calibrations hold different numbers of PMTs.")
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(g0 > 0, (g1 - g0) / g0, np.where(g1 > 0, np.inf, 0.0))
    relative = np.nan_to_num(relative, nan=0.0)
    shift = np.nan_to_num(t1 - t0, nan=0.0)
    moved = (np.abs(relative) > gain_tolerance) | (np.abs(shift) > offset_tolerance_ns)
    index = np.flatnonzero(moved)
    return Moved(index.astype(np.int64), relative[index], shift[index])
