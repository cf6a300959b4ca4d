"""The Calibrations page as state: every version, one version's constants per PMT on the map, the
PMTs that moved against the version before (5 % in gain, 1 ns in time), bad choices in one
sentence; and the rule itself (dqm.calibdiff)."""

from __future__ import annotations

import numpy as np
import pytest

from app.source import Source
from app.state import CalibrationsState
from dqm.calibdiff import moved_pmts
from dqm.db import queries
from dqm.db.session import transaction
from dqm.geometry import N_PMTS


def test_the_rule_lists_what_moved_beyond_the_tolerances() -> None:
    old_gains = np.array([100.0, 100.0, 100.0, 0.0, 100.0])
    new_gains = np.array([104.0, 94.0, 100.0, 90.0, 100.0])
    old_offsets = np.zeros(5)
    new_offsets = np.array([0.0, 0.0, 1.5, 0.0, -0.9])
    moved = moved_pmts(old_gains, old_offsets, new_gains, new_offsets)
    assert list(moved.pmt_id) == [1, 2, 3]  # -6 %, 1.5 ns, a gain where there was none
    assert moved.gain_change[0] == pytest.approx(-0.06) and moved.offset_change_ns[1] == 1.5
    with pytest.raises(ValueError, match="different numbers of PMTs"):
        moved_pmts(old_gains, old_offsets, new_gains[:3], new_offsets)


def test_versions_maps_and_the_pmts_that_moved(sqlite_database: str) -> None:
    rng = np.random.default_rng(3)
    gains = rng.normal(100.0, 3.0, N_PMTS)
    offsets = rng.normal(0.0, 0.2, N_PMTS)
    status = np.zeros(N_PMTS)
    with transaction(sqlite_database) as s:
        queries.add_calibration(
            s,
            valid_from_run=100,
            gains=gains,
            time_offsets=offsets,
            pmt_status=status,
            source_run=99,
            created_by="laser@cli",
        )
        drifted = gains.copy()
        drifted[:40] *= 0.9  # 40 PMTs lose 10 % of their gain
        shifted = offsets.copy()
        shifted[100:110] += 2.0  # 10 are 2 ns later
        queries.add_calibration(
            s,
            valid_from_run=200,
            gains=drifted,
            time_offsets=shifted,
            pmt_status=status,
            source_run=199,
        )
    state = CalibrationsState(source=Source(sqlite_database))
    state.refresh()
    assert list(state.versions["version"]) == [1, 2]
    assert list(state.versions["source_run"]) == [99, 199]
    assert {c for c in state.versions.columns if c.startswith("gain_")}  # per PMT type
    assert (state.version, state.other) == (2, 1)  # the newest, against the one before
    assert len(state.constants) == N_PMTS
    assert {"aitoff_x", "aitoff_y", "gain", "offset_ns", "status"} <= set(state.constants)
    assert sorted(state.moved["pmt_id"]) == list(range(40)) + list(range(100, 110))
    assert state.moved["gain_change"].iloc[0] == pytest.approx(-0.1)
    state.other = None
    assert state.moved.empty
    state.version = 7
    assert state.message == "there is no calibration version 7." and state.constants.empty


def test_no_calibration_yet_says_so(sqlite_database: str) -> None:
    state = CalibrationsState(source=Source(sqlite_database))
    state.refresh()
    assert state.message.startswith("No calibration is stored yet")
    assert state.version is None and state.constants.empty


def test_the_page_builds_its_maps_and_plots(sqlite_database: str) -> None:
    import panel as pn

    from app.main import DQMApp

    with transaction(sqlite_database) as s:
        for valid_from, scale in ((100, 1.0), (200, 1.07)):
            queries.add_calibration(
                s,
                valid_from_run=valid_from,
                gains=np.full(N_PMTS, 100.0 * scale),
                time_offsets=np.zeros(N_PMTS),
                pmt_status=np.zeros(N_PMTS),
            )
    app = DQMApp(source=Source(sqlite_database), refresh_s=0, page="calibrations")
    assert type(app.view).__name__ == "CalibrationsView"
    assert len(app.calibrations_state.moved) == N_PMTS  # every gain 7 % higher
    root = pn.panel(app.view).get_root()  # the Bokeh models: maps, histogram, history, tables
    assert root is not None
    app.calibrations_state.quantity = "offset_ns"
    pn.panel(app.view).get_root()
