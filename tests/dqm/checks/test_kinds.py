"""The check kinds' judgements: qualities, sentences with the numbers, TooFew and Unknown."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.checks.kinds import (
    Band,
    contents_in_range,
    histogram_mean_in_range,
    histogram_vs_reference,
    variable_in_band,
    variable_vs_history,
)
from dqm.checks.quality import Quality

EDGES = np.linspace(-5, 5, 101)
CENTERS = 0.5 * (EDGES[1:] + EDGES[:-1])


def sample(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    return np.histogram(np.random.default_rng(seed).normal(shift, 1, n), bins=EDGES)[0]


def test_histogram_vs_reference() -> None:
    reference = sample(1, 100_000)
    good = histogram_vs_reference(sample(2, 50_000), reference, reference_run=10003)
    assert good.quality is Quality.GOOD and good.reference_run == 10003
    assert good.sentence.startswith("χ²/ndf = ") and "against run 10003 (p = " in good.sentence
    bad = histogram_vs_reference(sample(3, 50_000, 0.2), reference, reference_run=10003)
    assert bad.quality is Quality.BAD and bad.sentence.endswith("Bad below p = 1e-06.")
    assert bad.statistics == pytest.approx(50_000, abs=10) and bad.details["p_value"] < 1e-6
    # a significant but tiny difference is not one when an effect size is asked for
    tiny = histogram_vs_reference(
        sample(4, 2_000_000, 0.01), sample(5, 2_000_000), reference_run=1, min_effect=1e-3
    )
    assert tiny.details["p_value"] < 1e-3 and tiny.quality is Quality.GOOD
    ks = histogram_vs_reference(sample(6, 50_000, 0.2), reference, reference_run=7, method="ks")
    assert ks.quality is Quality.BAD and ks.sentence.startswith("D = ")


def test_histogram_vs_reference_says_why_it_cannot_judge() -> None:
    few = histogram_vs_reference(sample(1, 500), sample(2, 10_000), reference_run=3)
    assert few.quality is Quality.TOOFEW and few.sentence == "500 entries; the check needs 1,000."
    none = histogram_vs_reference(sample(1, 5000), None, reference_run=None)
    assert none.quality is Quality.UNKNOWN and none.sentence == "no reference run to compare with."
    thin = histogram_vs_reference(sample(1, 5000), sample(2, 50), reference_run=9)
    assert thin.quality is Quality.UNKNOWN and "reference run 9 has 50 entries" in thin.sentence


def test_means_and_contents_in_range() -> None:
    counts = sample(1, 10_000, 0.3)
    mean = histogram_mean_in_range(
        CENTERS, counts, warning=Band(-0.2, 0.2), bad=Band(-0.5, 0.5), unit="MeV"
    )
    assert mean.quality is Quality.WARNING
    assert mean.sentence.startswith("mean 0.28") and "MeV over 10,000 entries" in mean.sentence
    assert (
        histogram_mean_in_range(CENTERS, counts, warning=Band(high=1), bad=Band(high=2)).quality
        is Quality.GOOD
    )
    assert (
        histogram_mean_in_range(CENTERS, counts[:0].repeat(0), warning=Band(), bad=Band())
        is not None
    )
    outside = contents_in_range(
        CENTERS, counts, low=-2, high=2, warning_fraction=0.01, bad_fraction=0.10
    )
    # a 0.3 σ shift puts about 5.5% of a Gaussian beyond ±2 σ (4.5% above, 1.1% below)
    assert outside.quality is Quality.WARNING
    assert outside.details["fraction_outside"] == pytest.approx(0.055, abs=0.005)
    assert "% of 10,000 entries outside [-2, 2]" in outside.sentence


def test_variables_in_bands_and_against_history() -> None:
    assert (
        variable_in_band(
            0.999,
            0.002,
            variable="k40_ratio",
            unit="1",
            warning=Band(0.99, 1.01),
            bad=Band(0.98, 1.02),
        ).quality
        is Quality.GOOD
    )
    low = variable_in_band(
        0.974, 0.004, variable="k40_ratio", unit="1", warning=Band(0.99, 1.01), bad=Band(0.98, 1.02)
    )
    assert low.quality is Quality.BAD
    assert low.sentence == (
        "k40_ratio = 0.974 ± 0.004; Good in [0.99, 1.01], Bad outside [0.98, 1.02]."
    )
    missing = variable_in_band(None, None, variable="x", unit="MeV", warning=Band(), bad=Band())
    assert missing.quality is Quality.UNKNOWN

    history = [1.000, 1.002, 0.998, 1.001, 0.999, 1.003, 0.997]
    steady = variable_vs_history(1.001, 0.001, history, variable="k40_ratio", unit="1")
    assert steady.quality is Quality.GOOD and steady.statistics == 7
    drift = variable_vs_history(0.980, 0.001, history, variable="k40_ratio", unit="1")
    assert drift.quality is Quality.BAD
    assert "from the median 1 of the last 7 Good runs" in drift.sentence
    assert variable_vs_history(1.0, 0.001, history[:3], variable="v", unit="1").quality is (
        Quality.TOOFEW
    )


def test_bands_read_and_print() -> None:
    assert 3 in Band(1, 5) and 0 not in Band(1, 5) and 9 in Band(low=1)
    assert (str(Band(1, 5)), str(Band(low=1)), str(Band(high=2))) == ("[1, 5]", "≥ 1", "≤ 2")
