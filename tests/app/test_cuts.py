"""The PMT cuts as state: classes under the cuts, live counts, the flagged PMTs; no Panel."""

from __future__ import annotations

import numpy as np
import pytest
from imports import modules_loaded

from app.cuts import PmtCuts
from dqm import detector
from dqm.pmtclass import DEAD, DEFAULT_CUTS, HOT, NORMAL, OTHER


def test_classes_and_counts_with_the_default_cuts(pmt_rates: tuple[np.ndarray, np.ndarray]) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates, run_id=7)
    assert (cuts.dead_cut, cuts.hot_cut, tuple(cuts.normal_band)) == (0.01, 0.99, (0.05, 0.15))
    assert cuts.hit_rate_cuts() == DEFAULT_CUTS
    assert (cuts.n_dead, cuts.n_hot, cuts.n_other, cuts.n_no_data) == (52, 8, 15, 5)
    assert cuts.n_normal == detector.N_PMTS - 52 - 8 - 15
    assert cuts.pmt_class[0] == DEAD and cuts.pmt_class[40] == HOT
    assert cuts.pmt_class[60] == OTHER and cuts.pmt_class[100] == NORMAL
    assert cuts.pmt_class[72] == OTHER  # NaN: no statistics
    assert cuts.has_statistics and cuts.cut_warning == ""


def test_moving_a_cut_reclassifies_and_says_what_contradictory_cuts_do(
    pmt_rates: tuple[np.ndarray, np.ndarray],
) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates)
    cuts.dead_cut = 0.001
    assert cuts.n_dead == 40 and cuts.n_other == 15 + 12
    cuts.normal_band = (0.05, 0.5)
    assert cuts.n_other == 12 + 5 and cuts.cut_warning == ""
    cuts.param.update(dead_cut=0.2, hot_cut=0.1)
    assert "above the hot cut" in cuts.cut_warning
    # dead wins over hot below the dead cut; 0.3 and 1.0 are hot; NaN stays other
    assert (cuts.n_dead, cuts.n_hot) == (detector.N_PMTS - 10 - 8 - 5, 18)
    with pytest.raises(ValueError):
        cuts.dead_cut = 1.5
    with pytest.raises(ValueError, match="one value per PMT"):
        PmtCuts.from_arrays(np.zeros(10), None)


def test_flagged_table(pmt_rates: tuple[np.ndarray, np.ndarray]) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates, run_id=7)
    flagged = cuts.flagged()
    assert list(flagged["class"]) == ["dead"] * 52 + ["hot"] * 8
    assert list(flagged["pmt_id"][:3]) == [0, 1, 2] and list(flagged["pmt_id"][52:54]) == [40, 41]


def test_the_state_and_the_rule_load_neither_panel_nor_bokeh() -> None:
    # The pipeline classifies PMTs and the state classes are tested without a server: neither
    # may pull in the plotting stack, even through the app's data access.
    loaded = modules_loaded(
        ["dqm.pmtclass", "app.cuts", "app.source", "app.state", "app.editor"],
        ["panel", "bokeh", "holoviews"],
    )
    assert loaded == []
