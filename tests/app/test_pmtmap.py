"""The PMT map: live counts, in-place recolouring, flagged PMTs as CSV."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from app.cuts import PmtCuts
from app.pmtmap import PmtMap
from dqm import detector
from dqm.pmtclass import DEAD


def test_flagged_csv(pmt_rates: tuple[np.ndarray, np.ndarray]) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates, run_id=7)
    flagged = cuts.flagged()
    view = PmtMap(cuts=cuts)
    assert view.csv_filename() == "run7_flagged_pmts.csv"
    back = pd.read_csv(io.StringIO(view.flagged_csv().getvalue()))
    assert list(back.columns) == list(flagged.columns) and len(back) == 60
    assert set(back["type"]) <= {"NNVT", "Hamamatsu"}


def test_a_slider_recolours_the_existing_plot_without_rebuilding_it(
    pmt_rates: tuple[np.ndarray, np.ndarray],
) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates, run_id=7)
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


def test_new_statistics_keep_the_cuts_and_a_run_without_them_gets_a_sentence(
    pmt_rates: tuple[np.ndarray, np.ndarray],
) -> None:
    cuts = PmtCuts.from_arrays(None, None, run_id=9)
    view = PmtMap(cuts=cuts)
    view.__panel__()
    assert not cuts.has_statistics and cuts.n_other == detector.N_PMTS
    assert view._message.visible and "Run 9 has no PMT statistics yet" in view._message.object
    assert not view._plot.visible
    cuts.dead_cut = 0.02
    cuts.set_statistics(*pmt_rates, run_id=9)
    assert cuts.dead_cut == 0.02 and cuts.n_dead == 52
    assert not view._message.visible and view._plot.visible
    assert np.count_nonzero(view.source.data["pmt_class"] == DEAD) == 52


def test_a_cut_step_that_changes_no_class_sends_nothing_again(
    pmt_rates: tuple[np.ndarray, np.ndarray],
) -> None:
    cuts = PmtCuts.from_arrays(*pmt_rates, run_id=7)
    view = PmtMap(cuts=cuts)
    view.__panel__()
    column, table = view.source.data["pmt_class"], view._table.value
    cuts.dead_cut = 0.02  # between 0.005 and 0.1: the same PMTs are dead
    assert view.source.data["pmt_class"] is column and view._table.value is table
    assert "< 0.02" in view._legend_items[0].label.value
    cuts.dead_cut = 0.003
    assert view.source.data["pmt_class"] is not column and len(view._table.value) == 48
