"""A histogram's shape against a reference's: the two-sample χ² and Kolmogorov–Smirnov tests on
binned contents, with the statistics they rest on and an effect size.

A p-value alone judges statistics as much as shapes: the same small difference of shape is
insignificant in a short run and overwhelming in a long one. So each comparison also gives an
effect size that does not grow with the statistics — the excess of χ²/ndf over what chance gives,
or the Kolmogorov distance — and a check may ask for both: a significant difference (small p) that
is also a real one (a large enough effect). Then a clean run stays Good however long it is, and a
faulty run is Bad at any sampling that leaves it enough events.

Both tests treat the contents as counts (histograms of unit weights): the χ² is the one for two
histograms of different totals (as ROOT's ``Chi2Test`` "UU"), the Kolmogorov–Smirnov distance is
the largest difference of the cumulative normalised contents, with the effective number of
entries ``n1 n2 / (n1 + n2)`` (binned, so its p-value is conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

__all__ = ["METHODS", "ShapeComparison", "compare_shapes"]

#: The comparisons: ``chi2`` and ``ks``.
METHODS = ("chi2", "ks")


@dataclass(frozen=True)
class ShapeComparison:
    """The outcome of comparing two binned shapes.

    Attributes:
        method: ``chi2`` or ``ks``.
        statistic: χ² or the Kolmogorov distance D.
        ndf: degrees of freedom of the χ² (bins with entries in either, minus one); 0 for ks.
        p_value: the probability of a difference at least this large by chance.
        effect: the size of the difference, independent of the statistics: for χ², the excess of
            χ² over its expectation per effective entry, ``(χ² - ndf) / n_eff``, which estimates
            ``Σ p_i δ_i²`` (the mean squared relative difference of the bins, weighted by their
            share of the entries); for ks, D.
        entries: the entries of the histogram judged.
        reference_entries: the entries of the reference.
    """

    method: str
    statistic: float
    ndf: int
    p_value: float
    effect: float
    entries: float
    reference_entries: float

    def describe(self) -> str:
        """The numbers in a few words: ``χ²/ndf = 4.2 (p = 1e-06)`` or ``D = 0.031 (p = 0.2)``."""
        if self.method == "chi2":
            ratio = self.statistic / self.ndf if self.ndf else float("nan")
            return f"χ²/ndf = {ratio:.3g} (p = {self.p_value:.2g})"
        return f"D = {self.statistic:.3g} (p = {self.p_value:.2g})"


def _counts(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"the {what} has negative or non-finite contents; compare counts only.")
    return array


def compare_shapes(
    counts: npt.ArrayLike, reference: npt.ArrayLike, method: str = "chi2"
) -> ShapeComparison:
    """Compare the shape of ``counts`` with that of ``reference`` (the same binning).

    Raises:
        ValueError: the binnings differ, a histogram is empty or not counts, or an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown comparison {method!r}; use one of {', '.join(METHODS)}.")
    n1, n2 = _counts(counts, "histogram"), _counts(reference, "reference")
    if n1.shape != n2.shape:
        raise ValueError(
            f"the histogram has {n1.size} bins and its reference {n2.size}: they cannot be "
            "compared."
        )
    total1, total2 = float(n1.sum()), float(n2.sum())
    if total1 <= 0 or total2 <= 0:
        raise ValueError("a histogram without entries has no shape to compare.")
    n_eff = total1 * total2 / (total1 + total2)
    if method == "ks":
        distance = float(np.max(np.abs(np.cumsum(n1) / total1 - np.cumsum(n2) / total2)))
        p_value = float(special.kolmogorov(math.sqrt(n_eff) * distance)) if distance else 1.0
        return ShapeComparison("ks", distance, 0, p_value, distance, total1, total2)
    used = (n1 + n2) > 0
    ndf = int(used.sum()) - 1
    if ndf < 1:
        return ShapeComparison("chi2", 0.0, 0, 1.0, 0.0, total1, total2)
    a, b = n1[used], n2[used]
    chi2 = float(np.sum((total2 * a - total1 * b) ** 2 / (a + b)) / (total1 * total2))
    p_value = float(stats.chi2.sf(chi2, ndf))
    effect = max(chi2 / ndf - 1.0, 0.0) * ndf / n_eff
    return ShapeComparison("chi2", chi2, ndf, p_value, effect, total1, total2)
