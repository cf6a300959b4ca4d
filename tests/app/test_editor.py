"""The check editor's state: a check's thresholds and a run type's PMT cuts back-tested on past runs,
then saved (a login needed, and only the values the table was made for)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from judgedruns import fill_judged_runs

from app.editor import EditorState
from app.source import Source
from dqm.db import queries
from dqm.db.session import transaction
from dqm.pmtclass import HitRateCuts
from dqm.users import Role


@pytest.fixture
def judged(sqlite_database: str) -> Source:
    return Source(fill_judged_runs(sqlite_database))


def test_a_check_is_backtested_then_saved(judged: Source) -> None:
    editor = EditorState(source=judged, user="ana", role=Role.EXPERT)
    editor.load()
    names = [c.name for c in editor.checks]
    assert "energy_po210_peak" in names and names == sorted(
        names, key=lambda n: (editor.checks[names.index(n)].stage, n)
    )
    editor.check = "energy_po210_peak"
    assert editor.values["warning"] == "0.4455, 0.4545" and editor.info is not None
    assert editor.info.version == 1 and "checks.toml" in editor.info.origin

    seen: list[tuple[int, int]] = []
    editor.param.watch(lambda e: seen.append((editor.done, editor.total)), "done")
    editor.values = {**editor.values, "warning": "0.4495, 0.4525"}
    editor.try_check()
    result = editor.result
    assert result is not None and not editor.running
    # the same runs change as under `dqm checks backtest` (103 and 104 leave the narrower band)
    assert result.changed_runs == [104, 103]
    assert list(result.rows["run"]) == [106, 105, 104, 103, 102, 101]
    assert result.summary == "2 of 6 runs would change: 104, 103."
    assert editor.notice == result.summary and "warning = 0.4495, 0.4525" in result.title
    assert seen[-1] == (6, 6)  # the progress counted every run
    row = result.rows.set_index("run").loc[104]
    assert (row["current"], row["proposed"]) == ("Good", "Warning")

    # an edit after the table: it must be seen again before it can be saved
    editor.values = {**editor.values, "bad": "0.444, 0.46"}
    assert not editor.can_save_check
    editor.save_check("tighter")
    assert editor.notice.startswith("Not saved: back-test these values first")
    editor.try_check()
    assert editor.can_save_check
    editor.save_check("tighter after the calibration")
    assert editor.notice.startswith("Check energy_po210_peak saved as version 2")
    assert editor.info is not None and editor.info.version == 2
    assert editor.values["bad"] == "0.444, 0.46" and editor.result is None
    with transaction(judged.database_url) as s:
        change = queries.changes(s, limit=1)[0]
        assert (change.user, change.action, change.target) == (
            "ana",
            "check_version",
            "energy_po210_peak",
        )
        assert change.detail["comment"] == "tighter after the calibration"
        assert change.detail["changed"] == {
            "warning": [0.4495, 0.4525],
            "bad": [0.444, 0.46],
        }


def test_bad_values_and_anonymous_visitors_get_one_sentence(judged: Source) -> None:
    guest = EditorState(source=judged, user="guest")
    guest.load()
    guest.try_check()
    assert guest.notice == "Choose a check first."
    guest.check = "energy_po210_peak"
    guest.values = {**guest.values, "warning": "low"}
    guest.try_check()
    assert guest.notice.startswith("Not tried:") and "warning" in guest.notice
    assert guest.result is None
    guest.values = {**guest.values, "warning": "0.447, 0.452"}
    guest.try_check()  # trying is reading: anyone may
    assert guest.result is not None and guest.can_save_check
    guest.save_check("mine")
    assert guest.notice.startswith("Not saved: changing a check needs a login")
    shifter = EditorState(source=judged, user="sam", role=Role.SHIFTER, check="energy_po210_peak")
    shifter.load()
    shifter.values = {**shifter.values, "warning": "0.447, 0.452"}
    shifter.try_check()
    shifter.save_check("mine")
    assert shifter.notice == "Not saved: changing a check needs the expert role; sam is a shifter."
    with transaction(judged.database_url) as s:
        assert queries.highest_check_versions(s)["energy_po210_peak"] == 1

    writer = EditorState(source=judged, user="ana", role=Role.EXPERT, check="energy_po210_peak")
    writer.load()
    writer.try_check()  # nothing edited: nothing changes, nothing to save
    assert writer.result is not None and writer.result.summary.startswith("None of the 6")
    writer.save_check("same")
    assert "nothing to save" in writer.notice
    writer.check = "no_such_check"
    writer.load()
    assert writer.check == "" and writer.values == {}


def test_the_pmt_cuts_of_a_type_are_backtested_then_saved(demo_data, tmp_path: Path) -> None:
    import demo

    # a copy: the demo installation is shared by other tests, and this one saves cuts
    copy = tmp_path / "dqm.sqlite"
    shutil.copyfile(demo_data.data_dir / "dqm.sqlite", copy)
    source = Source(f"sqlite:///{copy}")
    editor = EditorState(source=source, user="ana", role=Role.EXPERT)
    editor.load()
    assert editor.run_type == "physics" and "built-in cuts" in editor.saved_cuts
    # the demo's runs are short: judge the PMT classes from 500 events on (a first change)
    editor.check = "pmt_classes"
    editor.values = {**editor.values, "min_events": "500"}
    editor.try_check()
    editor.save_check("the demo's runs are short")
    assert "saved as version 2" in editor.notice
    # no PMT is dead any more: the faulty run's 40 dead PMTs are no longer counted
    editor.dead_cut = 0.0
    editor.try_cuts()
    result = editor.result
    assert result is not None
    assert set(result.rows["check"]) >= {"pmt_classes"}
    faulty = result.rows[
        (result.rows["run"] == demo.FAULTY_RUN) & (result.rows["check"] == "pmt_classes")
    ].iloc[0]
    assert faulty["current"] == "Bad" and faulty["proposed"] == "Bad"  # the 8 hot PMTs
    assert faulty["current_sentence"].startswith(f"{demo.N_DEAD} dead ({demo.N_DEAD} new")
    assert faulty["proposed_sentence"].startswith(f"0 dead, {demo.N_HOT} hot")
    assert not faulty["changes"] and demo.FAULTY_RUN not in result.changed_runs
    # a dead cut far too high: the clean run's PMTs would be dead by thousands
    editor.dead_cut, editor.normal_low = 0.5, 0.6
    editor.try_cuts()
    assert editor.result is not None and demo.GOOD_RUN in editor.result.changed_runs
    good = editor.result.rows.set_index(["run", "check"]).loc[demo.GOOD_RUN, "pmt_classes"]
    assert (good["current"], good["proposed"]) == ("Good", "Bad"), good["proposed_sentence"]
    with pytest.raises(ValueError):
        editor.hot_cut = 2.0  # outside [0, 1]: refused, as by the widget
    editor.normal_low, editor.normal_high = 0.3, 0.2  # a band that runs backwards
    editor.try_cuts()
    editor.save_cuts()
    assert editor.notice.startswith("Not saved:")
    editor.dead_cut, editor.normal_low, editor.normal_high = 0.0, 0.02, 0.3
    editor.try_cuts()
    editor.save_cuts()
    assert editor.notice == "Saved as the default cuts of physics runs."
    assert "saved by ana" in editor.saved_cuts
    assert source.cut_defaults("physics")["dead_cut"] == 0.0  # type: ignore[index]


def test_the_pmt_maps_cuts_open_in_the_editor(judged: Source) -> None:
    from app.main import DQMApp

    app = DQMApp(source=judged, refresh_s=0)
    app.try_cuts("physics", HitRateCuts(0.0, 0.995, (0.02, 0.2)))
    assert app.page == "editor" and app.editor_state is not None
    editor = app.editor_state
    assert (editor.run_type, editor.dead_cut, editor.hot_cut) == ("physics", 0.0, 0.995)
    assert (editor.normal_low, editor.normal_high) == (0.02, 0.2)
    assert editor.notice.startswith("The cuts of the PMT map")
    app.refresh()  # the periodic refresh leaves the form alone
    assert editor.dead_cut == 0.0
