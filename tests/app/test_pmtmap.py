"""The PMT map: classes under the cuts, live counts, in-place recolouring, flagged PMTs as CSV."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from app.pmtmap import DEAD, HOT, NORMAL, OTHER, PmtCuts, PmtMap
from dqm import detector


def _rates() -> tuple[np.ndarray, np.ndarray]:
    n = detector.N_PMTS
    rate = np.full(n, 0.10)
    rate[:40] = 0.0  # dead
    rate[40:48] = 1.0  # hot
    rate[48:60] = 0.005  # dead under the default cut, alive under a lower one
    rate[60:70] = 0.30  # between the normal band and the hot cut: other
    rate[70:75] = np.nan  # no statistics
    charge = np.where(np.isnan(rate), np.nan, 1.1)
    return rate, charge


def test_classes_and_counts_with_the_default_cuts() -> None:
    cuts = PmtCuts.from_arrays(*_rates(), run_id=7)
    assert (cuts.dead_cut, cuts.hot_cut, tuple(cuts.normal_band)) == (0.01, 0.99, (0.05, 0.15))
    assert (cuts.n_dead, cuts.n_hot, cuts.n_other, cuts.n_no_data) == (52, 8, 15, 5)
    assert cuts.n_normal == detector.N_PMTS - 52 - 8 - 15
    assert cuts.pmt_class[0] == DEAD and cuts.pmt_class[40] == HOT
    assert cuts.pmt_class[60] == OTHER and cuts.pmt_class[100] == NORMAL
    assert cuts.pmt_class[72] == OTHER  # NaN: no statistics
    assert cuts.has_statistics and cuts.cut_warning == ""


def test_moving_a_cut_reclassifies_and_says_what_contradictory_cuts_do() -> None:
    cuts = PmtCuts.from_arrays(*_rates())
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


def test_flagged_table_and_csv() -> None:
    cuts = PmtCuts.from_arrays(*_rates(), run_id=7)
    flagged = cuts.flagged()
    assert list(flagged["class"]) == ["dead"] * 52 + ["hot"] * 8
    assert list(flagged["pmt_id"][:3]) == [0, 1, 2] and list(flagged["pmt_id"][52:54]) == [40, 41]
    view = PmtMap(cuts=cuts)
    assert view.csv_filename() == "run7_flagged_pmts.csv"
    back = pd.read_csv(io.StringIO(view.flagged_csv().getvalue()))
    assert list(back.columns) == list(flagged.columns) and len(back) == 60
    assert set(back["type"]) <= {"NNVT", "Hamamatsu"}


def test_a_slider_recolours_the_existing_plot_without_rebuilding_it() -> None:
    cuts = PmtCuts.from_arrays(*_rates(), run_id=7)
    view = PmtMap(cuts=cuts)
    layout, figure, source = view.__panel__(), view.figure, view.source
    assert len(source.data["pmt_class"]) == detector.N_PMTS
    hit_rate_column = source.data["hit_rate"]
    cuts.dead_cut = 0.001
    assert view.__panel__() is layout and view.figure is figure and view.source is source
    assert np.count_nonzero(source.data["pmt_class"] == DEAD) == 40
    assert source.data["hit_rate"] is hit_rate_column  # only the class column is sent again
    assert "Dead <b>40</b>" in view._counts.value
    assert len(view._table.value) == 48
    view.colour_by = "hit rate"
    assert view._pmt_renderer.glyph.fill_color.transform is view._rate_mapper
    view.colour_by = "class"
    assert view._pmt_renderer.glyph.fill_color.transform is view._class_mapper


def test_new_statistics_keep_the_cuts_and_a_run_without_them_gets_a_sentence() -> None:
    cuts = PmtCuts.from_arrays(None, None, run_id=9)
    view = PmtMap(cuts=cuts)
    view.__panel__()
    assert not cuts.has_statistics and cuts.n_other == detector.N_PMTS
    assert view._message.visible and "Run 9 has no PMT statistics yet" in view._message.object
    assert not view._plot.visible
    cuts.dead_cut = 0.02
    cuts.set_statistics(*_rates(), run_id=9)
    assert cuts.dead_cut == 0.02 and cuts.n_dead == 52
    assert not view._message.visible and view._plot.visible
    assert np.count_nonzero(view.source.data["pmt_class"] == DEAD) == 52


def test_a_cut_step_that_changes_no_class_sends_nothing_again() -> None:
    cuts = PmtCuts.from_arrays(*_rates(), run_id=7)
    view = PmtMap(cuts=cuts)
    view.__panel__()
    column, table = view.source.data["pmt_class"], view._table.value
    cuts.dead_cut = 0.02  # between 0.005 and 0.1: the same PMTs are dead
    assert view.source.data["pmt_class"] is column and view._table.value is table
    assert "< 0.02" in view._legend_items[0].label.value
    cuts.dead_cut = 0.003
    assert view.source.data["pmt_class"] is not column and len(view._table.value) == 48
