"""Classifying PMTs by their hit rate: the cuts' edges, the precedence, PMTs without data."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.errors import InvalidValueError
from dqm.pmtclass import (
    DEAD,
    DEFAULT_CUTS,
    HOT,
    NORMAL,
    OTHER,
    PMT_CLASSES,
    HitRateCuts,
    classify,
    noisy,
)


def test_the_default_cuts() -> None:
    assert DEFAULT_CUTS == HitRateCuts(dead_cut=0.01, hot_cut=0.99, normal_band=(0.05, 0.15))
    assert DEFAULT_CUTS.describe() == "dead < 0.01, hot > 0.99, normal 0.05 to 0.15"
    assert DEFAULT_CUTS.contradictions() == ""
    assert PMT_CLASSES[DEAD] == "dead" and PMT_CLASSES[OTHER] == "other"


def test_a_rate_exactly_at_a_cut() -> None:
    # Dead and hot are strict inequalities; the normal band includes its ends.
    result = classify([0.01, 0.99, 0.05, 0.15, 0.00999, 0.99001])
    assert list(result.pmt_class) == [OTHER, OTHER, NORMAL, NORMAL, DEAD, HOT]


def test_dead_wins_over_hot_and_both_over_normal() -> None:
    cuts = HitRateCuts(dead_cut=0.5, hot_cut=0.2, normal_band=(0.0, 1.0))
    result = classify([0.1, 0.3, 0.6], cuts)
    assert list(result.names()) == ["dead", "dead", "hot"]
    assert "above the hot cut" in cuts.contradictions()
    assert "below the dead cut" in cuts.contradictions()
    assert "above the hot cut (0.2): PMTs over" in cuts.contradictions()


def test_a_backwards_band_makes_no_pmt_normal() -> None:
    cuts = HitRateCuts(normal_band=(0.15, 0.05))
    result = classify([0.1, 0.05, 0.15], cuts)
    assert result.n_normal == 0 and result.n_other == 3
    assert cuts.contradictions().startswith("The normal band runs backwards (0.15 to 0.05)")


def test_pmts_without_statistics_are_other_and_counted() -> None:
    result = classify([np.nan, 0.0, 0.1, np.nan, 1.0])
    assert list(result.pmt_class) == [OTHER, DEAD, NORMAL, OTHER, HOT]
    assert result.counts() == {"dead": 1, "hot": 1, "normal": 1, "other": 2}
    assert result.n_no_data == 2 and result.has_statistics
    assert not classify([np.nan, np.nan]).has_statistics
    assert not classify([]).has_statistics


def test_counts_add_up_and_classes_are_int8() -> None:
    rate = np.random.default_rng(3).random(17_612)
    result = classify(rate, HitRateCuts(dead_cut=0.1, hot_cut=0.9, normal_band=(0.3, 0.6)))
    assert result.pmt_class.dtype == np.int8 and result.pmt_class.shape == rate.shape
    assert sum(result.counts().values()) == rate.size
    assert result.n_dead == np.count_nonzero(rate < 0.1)


@pytest.mark.parametrize(
    ("cuts", "message"),
    [
        ({"dead_cut": 1.5}, "dead cut must lie in"),
        ({"hot_cut": -0.1}, "hot cut must lie in"),
        ({"dead_cut": float("nan")}, "dead cut must lie in"),
        ({"normal_band": (0.1, 1.2)}, "normal band's ends must lie in"),
    ],
)
def test_cuts_outside_zero_to_one_are_refused(cuts: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        HitRateCuts(**cuts)


def test_cuts_are_plain_floats_and_a_rate_array_must_be_flat() -> None:
    cuts = HitRateCuts(dead_cut=np.float32(0.25), normal_band=[0.3, 0.5])
    assert type(cuts.dead_cut) is float and cuts.normal_band == (0.3, 0.5)
    with pytest.raises(ValueError, match="one value per PMT"):
        classify(np.zeros((2, 3)))


def test_noisy_pmts_are_well_above_their_types_nominal_dark_rate() -> None:
    # 10 ms of pre-trigger windows: 490 hits expected at 49 kHz, 1,470 at the cut of 3 times.
    livetime_ns = 1e7
    nominal = np.array([49e3, 49e3, 49e3, 15e3, 15e3, 49e3])
    counts = np.array([490, 1500, 5000, 800, 150, 0])
    result = noisy(counts, livetime_ns, nominal)
    # 1,500 is above the cut but within 5 standard deviations (1,470 + 5 x 38): not noisy;
    # 800 hits at 15 kHz is 5.3 times the nominal rate, well above 450 + 5 x 21.
    assert list(result) == [False, False, True, True, False, False]
    assert not noisy(counts, 0.0, nominal).any()
    assert list(noisy([3], 1e7, 49e3, factor=1e-6, significance=0.0)) == [True]


def test_dead_and_hot_pmts_are_not_noisy() -> None:
    classes = classify([0.0, 0.995, 0.1])
    counts = np.full(3, 10_000)
    assert list(noisy(counts, 1e7, 49e3)) == [True, True, True]
    assert list(noisy(counts, 1e7, 49e3, classes=classes)) == [False, False, True]
