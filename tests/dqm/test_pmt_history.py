"""The PMT status history (dqm.pmtstatus, queries.pmt_history and pmt_changes), the masks derived
from it or written by hand, and ``dqm pmt`` / ``dqm mask`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from judgedruns import fill_judged_runs
from pmthistory import fill_pmt_history

from dqm import pmtstatus
from dqm.cli import cli
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.pmtclass import HitRateCuts, classify


def test_status_codes_noisy_wins_over_normal_and_other_only() -> None:
    classes = classify(np.array([0.0, 1.0, 0.1, 0.1, 0.3]), HitRateCuts())
    noisy = np.array([True, True, True, False, True])
    codes = pmtstatus.status_codes(classes, noisy)
    names = [pmtstatus.STATUS_CLASSES[c] for c in codes]
    assert names == ["dead", "hot", "noisy", "normal", "noisy"]


def test_changes_between_two_runs() -> None:
    d, h, n, ok, o = (
        pmtstatus.S_DEAD,
        pmtstatus.S_HOT,
        pmtstatus.S_NOISY,
        pmtstatus.S_NORMAL,
        pmtstatus.S_OTHER,
    )
    before = np.array([ok, ok, ok, d, h, n, d, ok])
    after = np.array([d, h, n, ok, ok, ok, d, o])
    changes = pmtstatus.changes_between(before, after)
    assert changes.newly_dead.tolist() == [0]
    assert changes.newly_hot.tolist() == [1]
    assert changes.newly_noisy.tolist() == [2]
    assert changes.recovered.tolist() == [3, 4, 5]
    assert not changes.empty
    assert pmtstatus.changes_between(after, after).empty
    with pytest.raises(InvalidValueError, match="cannot be compared"):
        pmtstatus.changes_between(before, after[:3])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999", "there is no PMT 99999"),
        ("17, x", "not 'x'"),
        ("-3", "not '-3'"),
        ("30-20", "runs backwards"),
        ("1.5", "not '1.5'"),
    ],
)
def test_bad_pmt_ids_are_one_sentence(text: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        pmtstatus.parse_pmt_ids(text)


def test_pmt_ids_parse_and_format() -> None:
    ids = pmtstatus.parse_pmt_ids("17, 4242 100-103,17")
    assert ids.tolist() == [17, 100, 101, 102, 103, 4242]
    assert pmtstatus.format_pmt_ids(ids) == "17, 100-103, 4242"
    assert pmtstatus.format_pmt_ids(range(0, 20, 2), limit=3) == "0, 2, 4 and 7 more"
    assert pmtstatus.parse_pmt_ids("").tolist() == []


@pytest.fixture
def history(sqlite_database: str) -> str:
    return fill_pmt_history(fill_judged_runs(sqlite_database))


def test_history_of_a_pmt_and_when_it_was_first_dead(history: str) -> None:
    with transaction(history) as s:
        rows = queries.pmt_history(s, pmt_id=9)
        assert [r.run_id for r in rows] == list(range(101, 107))
        assert [r.status for r in rows] == ["normal"] * 3 + ["dead"] * 3
        assert rows[0].hit_rate == pytest.approx(0.1)
        assert rows[-1].hit_rate == 0.0
        assert rows[0].signal_charge_pe == pytest.approx(1.101)
        assert queries.first_dead_run(s, pmt_id=9) == 104
        assert queries.first_dead_run(s, pmt_id=20) == 101
        assert queries.first_dead_run(s, pmt_id=100) is None
        assert [r.run_id for r in queries.pmt_history(s, pmt_id=9, limit=2)] == [105, 106]
        with pytest.raises(InvalidValueError, match="there is no PMT 99999"):
            queries.pmt_history(s, pmt_id=99999)


def test_changes_since_the_previous_run_of_the_type(history: str) -> None:
    with transaction(history) as s:
        current, previous, changes = queries.pmt_changes(s, run_id=104)
        assert previous is not None and previous.run_id == 103
        assert changes.newly_dead.tolist() == [9] and changes.recovered.tolist() == [20]
        current, previous, changes = queries.pmt_changes(s, run_id=106)
        assert changes.newly_hot.tolist() == [12] and changes.newly_noisy.tolist() == [30]
        assert (current.n_dead, current.n_hot, current.n_noisy) == (2, 1, 1)
        assert queries.pmt_changes(s, run_id=101)[1:] == (None, None)


def test_masks_derived_from_the_history_and_edited_by_hand(history: str) -> None:
    with transaction(history) as s:
        derived = queries.derive_pmt_mask(
            s, run_type="physics", until_run=106, consecutive=3, user="eve"
        )
        assert pmtstatus.decode_ids(derived.pmts).tolist() == [5, 9]
        assert (derived.version, derived.valid_from_run) == (1, 107)
        assert derived.origin["runs"] == [104, 105, 106]
        longer = queries.derive_pmt_mask(
            s, run_type="physics", until_run=106, consecutive=6, user="eve", valid_from_run=200
        )
        assert pmtstatus.decode_ids(longer.pmts).tolist() == [5]
        with pytest.raises(InvalidValueError, match="needs 7"):
            queries.derive_pmt_mask(s, run_type="physics", until_run=106, consecutive=7, user="e")
        edited = queries.edit_pmt_mask(
            s, valid_from_run=150, add=np.array([17]), remove=np.array([9]), user="eve"
        )
        # the base is the version valid for run 150: the first derived one
        assert pmtstatus.decode_ids(edited.pmts).tolist() == [5, 17]
        assert edited.origin == {"kind": "edited", "base_version": 1, "added": [17], "removed": [9]}
        with pytest.raises(InvalidValueError, match="would not change"):
            queries.edit_pmt_mask(s, valid_from_run=150, add=np.array([5]), user="eve")
        # the newest version whose validity holds a run wins, as for the calibrations
        assert queries.pmt_mask_for_run(s, run_id=106) is None
        assert queries.pmt_mask_for_run(s, run_id=120).version == 1
        assert queries.pmt_mask_for_run(s, run_id=160).version == 3
        assert queries.pmt_mask_for_run(s, run_id=300).version == 3
        recorded = [c for c in queries.changes(s) if c.action == "pmt_mask"]
        assert [c.target for c in recorded] == ["mask 3", "mask 2", "mask 1"]


@pytest.fixture
def dqm(history: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DQM_CONFIG", raising=False)

    def run(*args: str):
        return CliRunner().invoke(
            cli,
            list(args),
            env={"DQM_DATABASE_URL": history, "USER": "ana", "DQM_MASK_CONSECUTIVE": "2"},
            catch_exceptions=False,
        )

    return run


def test_the_command_line(dqm) -> None:
    out = dqm("pmt", "history", "9", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["first_dead_run"] == 104 and len(data["runs"]) == 6
    assert data["runs"][0]["hit_rate"] == pytest.approx(0.1)
    table = dqm("pmt", "history", "9")
    assert "first dead in run 104" in table.output and "dead" in table.output
    changes = dqm("pmt", "changes", "104")
    assert "newly dead: 1 (9)" in changes.output and "recovered: 1 (20)" in changes.output
    assert json.loads(dqm("pmt", "changes", "106", "--json").output)["changes"]["newly hot"] == [12]
    assert "no PMT mask yet" in dqm("mask", "list").output
    derived = dqm("mask", "derive", "--until", "106")  # 2 runs, from the configuration
    assert derived.output.startswith("mask version 1: 2 PMT(s), valid from run 107 on."), (
        derived.output
    )
    edited = dqm("mask", "edit", "--from-run", "110", "--add", "100-102", "--comment", "HV trip")
    assert edited.exit_code == 0, edited.output
    shown = json.loads(dqm("mask", "show", "2", "--json").output)
    assert shown["pmts"] == [5, 9, 100, 101, 102] and shown["created_by"] == "ana@cli"
    assert "edited from version 1" in dqm("mask", "list").output


@pytest.mark.parametrize(
    "args",
    [
        ("pmt", "history", "99999"),
        ("pmt", "history", "abc"),
        ("pmt", "changes", "999"),
        ("mask", "show", "7"),
        ("mask", "edit", "--from-run", "110", "--add", "99999", "--comment", "x"),
        ("mask", "edit", "--from-run", "110", "--comment", "nothing to change"),
        ("mask", "derive", "--until", "106", "--consecutive", "9"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line(dqm, args) -> None:
    out = dqm(*args)
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.output
