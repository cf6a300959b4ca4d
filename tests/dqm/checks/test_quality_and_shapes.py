"""Qualities aggregate worst-first; shape comparisons give p-values that follow the statistics and
effect sizes that do not."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.checks.quality import Quality, parse_quality, worst
from dqm.checks.shapes import compare_shapes

G, W, B, T, U = Quality.GOOD, Quality.WARNING, Quality.BAD, Quality.TOOFEW, Quality.UNKNOWN


@pytest.mark.parametrize(
    ("qualities", "expected"),
    [
        ([], None),
        ([G, G], G),
        ([G, T], T),  # a stage not yet judged whole is not Good
        ([T, U, G], U),
        ([U, W], W),
        ([T, U, W, B, G], B),  # nothing hides a Bad
    ],
)
def test_the_worst_quality_wins(qualities: list[Quality], expected: Quality | None) -> None:
    assert worst(qualities) is expected


def test_qualities_parse_in_any_case() -> None:
    assert parse_quality("bad") is B and parse_quality("Too Few") is T
    assert parse_quality(" UNKNOWN ") is U
    with pytest.raises(ValueError, match="'Medium' is not a quality; the qualities are Good"):
        parse_quality("Medium")


EDGES = np.linspace(-5, 5, 101)


def sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    return np.histogram(rng.normal(shift, 1.0, n), bins=EDGES)[0]


@pytest.mark.parametrize("method", ["chi2", "ks"])
def test_the_same_shape_is_not_a_difference_at_any_statistics(method: str) -> None:
    rng = np.random.default_rng(1)
    for n in (10_000, 1_000_000):
        result = compare_shapes(sample(rng, n), sample(rng, 2 * n), method)
        assert result.p_value > 0.01, (n, result)
        assert result.effect < (2e-3 if method == "chi2" else 0.01), (n, result)
        # the entries in range (a few fall beyond ±5 σ)
        assert result.entries == pytest.approx(n, abs=10)
        assert result.reference_entries == pytest.approx(2 * n, abs=20)


@pytest.mark.parametrize("method", ["chi2", "ks"])
def test_a_shifted_shape_is_significant_and_its_effect_does_not_follow_the_statistics(
    method: str,
) -> None:
    rng = np.random.default_rng(2)
    small = compare_shapes(sample(rng, 20_000, 0.1), sample(rng, 200_000), method)
    large = compare_shapes(sample(rng, 1_000_000, 0.1), sample(rng, 1_000_000), method)
    assert small.p_value < 1e-4 and large.p_value < small.p_value
    assert large.effect == pytest.approx(small.effect, rel=0.3)
    if method == "chi2":
        assert large.effect == pytest.approx(0.01, rel=0.3)  # Σ p δ² of a 0.1 σ shift ≈ 0.1²
    else:
        assert large.effect == pytest.approx(0.04, rel=0.1)  # D of a 0.1 σ shift: 0.1 φ(0)


def test_identical_histograms_and_the_descriptions() -> None:
    counts = np.array([0, 5, 10, 5, 0])
    chi2 = compare_shapes(counts, 3 * counts)
    assert (chi2.statistic, chi2.ndf, chi2.p_value, chi2.effect) == (0.0, 2, 1.0, 0.0)
    assert chi2.describe() == "χ²/ndf = 0 (p = 1)"
    ks = compare_shapes(counts, counts, "ks")
    assert (ks.statistic, ks.p_value) == (0.0, 1.0) and ks.describe() == "D = 0 (p = 1)"
    one_bin = compare_shapes([0, 4, 0], [0, 9, 0])
    assert (one_bin.ndf, one_bin.p_value) == (0, 1.0)


@pytest.mark.parametrize(
    ("counts", "reference", "method", "message"),
    [
        ([1, 2], [1, 2, 3], "chi2", "the histogram has 2 bins and its reference 3"),
        ([0, 0], [1, 2], "chi2", "a histogram without entries has no shape"),
        ([1, -2], [1, 2], "ks", "the histogram has negative or non-finite contents"),
        ([1, 2], [1, np.nan], "chi2", "the reference has negative or non-finite contents"),
        ([1, 2], [1, 2], "anderson", "unknown comparison 'anderson'; use one of chi2, ks"),
    ],
)
def test_what_cannot_be_compared_is_said(
    counts: list[float], reference: list[float], method: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compare_shapes(counts, reference, method)
