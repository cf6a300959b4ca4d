"""The command line of checks, quality, references and alarms: dqm quality, dqm reference, dqm alarms
(and ack, close, show), dqm checks list|backtest|save|rerun; bad input is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from judgedruns import fill_judged_runs

from dqm.cli import cli
from dqm.db import migrate, queries
from dqm.db.session import transaction
from dqm.runstatus import CHECKS_JOB_KIND


@pytest.fixture
def filled(sqlite_database: str) -> str:
    return fill_judged_runs(sqlite_database)


@pytest.fixture
def dqm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DQM_CONFIG", raising=False)

    def run(*args: str, url: str):
        return CliRunner().invoke(
            cli, list(args), env={"DQM_DATABASE_URL": url, "USER": "ana"}, catch_exceptions=False
        )

    return run


def test_quality_prints_the_run_and_every_check(filled: str, dqm) -> None:
    result = dqm("quality", "105", url=filled)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "run 105 (physics, All Completed): Bad (analyses Warning, pmt Bad)"
    )
    assert "pmt_classes" in result.output and "31 dead (30 new)" in result.output
    info = json.loads(dqm("quality", "105", "--json", url=filled).output)
    assert info["quality"] == "Bad" and info["stages"] == {"analyses": "Warning", "pmt": "Bad"}
    assert {c["check"] for c in info["checks"]} == {"energy_po210_peak", "pmt_classes"}
    assert "not judged yet" in dqm("quality", "106", url=filled).output
    bad = dqm("quality", "999", url=filled)
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_reference_says_which_and_why_and_pins_are_recorded(filled: str, dqm) -> None:
    result = dqm("reference", "106", url=filled)
    assert result.exit_code == 0, result.output
    assert "run 106: reference 104: run 104 is the latest completed physics run" in result.output
    result = dqm(
        "reference", "106", "--pin", "102", "--comment", "before the HV change", url=filled
    )
    assert "reference 102: run 102 was pinned for run 106 by ana@cli" in result.output
    assert "(before the HV change)" in result.output
    # the run's own pin wins over its run type's
    assert "reference 102" in dqm("reference", "106", "--pin-type", "101", url=filled).output
    assert "reference 101" in dqm("reference", "106", "--unpin", url=filled).output
    assert "reference 104" in dqm("reference", "106", "--unpin-type", url=filled).output
    bad = dqm("reference", "106", "--pin", "106", url=filled)
    assert bad.exit_code == 2 and "cannot be its own reference" in bad.output
    both = dqm("reference", "106", "--pin", "101", "--unpin", url=filled)
    assert both.exit_code == 2 and "give one of" in both.output
    with transaction(filled) as s:
        assert sum(c.action == "reference" for c in queries.changes(s)) == 4


def test_alarms_list_show_acknowledge_and_close(filled: str, dqm) -> None:
    rows = json.loads(dqm("alarms", "--open", "--json", url=filled).output)
    assert [(r["run"], r["check"], r["state"]) for r in rows] == [(105, "pmt_classes", "OPEN")]
    alarm_id = str(rows[0]["id"])
    assert "31 dead" in dqm("alarms", url=filled).output
    missing = dqm("alarms", "ack", alarm_id, url=filled)
    assert missing.exit_code == 2 and "--comment" in missing.output
    empty = dqm("alarms", "ack", alarm_id, "--comment", "  ", url=filled)
    assert empty.exit_code == 2
    assert (
        empty.output.strip()
        == "error: acknowledging an alarm needs a comment: say what was done or why."
    )
    ok = dqm("alarms", "ack", alarm_id, "--comment", "HV trip, expert called", url=filled)
    assert ok.exit_code == 0 and "acknowledged by ana@cli" in ok.output
    again = dqm("alarms", "ack", alarm_id, "--comment", "me too", url=filled)
    assert again.exit_code == 2 and "acknowledged already by ana@cli" in again.output
    closed = dqm("alarms", "close", alarm_id, "--comment", "PMTs masked", url=filled)
    assert closed.exit_code == 0
    assert "no alarms open." in dqm("alarms", "--open", url=filled).output
    shown = dqm("alarms", "show", alarm_id, url=filled).output
    assert "acknowledged by ana@cli: HV trip, expert called" in shown
    assert "closed by ana@cli: PMTs masked" in shown
    assert dqm("alarms", "show", "999", url=filled).exit_code == 2
    assert dqm("alarms", "--severity", "awful", url=filled).exit_code == 2


def test_backtest_then_save_then_rerun(filled: str, dqm) -> None:
    assert "energy_po210_peak" in dqm("checks", "list", url=filled).output
    result = dqm(
        "checks", "backtest", "energy_po210_peak", "--set", "warning=0.4495,0.4525", url=filled
    )
    assert result.exit_code == 0, result.output
    # 103 (0.4535) and 104 (0.449) leave the narrower band; 105 was Warning already
    assert result.output.strip().endswith("2 of 6 runs would change: 104, 103.")
    report = json.loads(
        dqm(
            "checks",
            "backtest",
            "energy_po210_peak",
            "--set",
            "bad=0.444,0.46",
            "--json",
            url=filled,
        ).output
    )
    assert report["changed"] == [105] and report["runs"][1]["proposed"] == "Bad"
    wrong = dqm("checks", "backtest", "energy_po210_peak", "--set", "colour=red", url=filled)
    assert wrong.exit_code == 2 and "has no parameter 'colour'" in wrong.output
    assert dqm("checks", "backtest", "nope", "--set", "a=1", url=filled).exit_code == 2

    saved = dqm(
        "checks",
        "save",
        "energy_po210_peak",
        "--set",
        "bad=0.444,0.46",
        "--comment",
        "tighter",
        url=filled,
    )
    assert saved.exit_code == 0 and "version 2 saved (saved by ana@cli" in saved.output
    with transaction(filled) as s:
        change = queries.changes(s, limit=1)[0]
        assert (change.action, change.target) == ("check_version", "energy_po210_peak")
        assert change.detail["changed"] == {"bad": [0.444, 0.46]}
    listed = json.loads(dqm("checks", "list", "--json", url=filled).output)
    assert any(r["name"] == "energy_po210_peak" for r in listed)
    # the next backtest starts from the saved version
    again = dqm("checks", "backtest", "energy_po210_peak", "--set", "bad=0.444,0.46", url=filled)
    assert "0 of 6 runs would change." in again.output

    rerun = dqm("checks", "rerun", "--runs", "3", url=filled)
    assert rerun.exit_code == 0 and "checks of 3 runs queued (3 new jobs" in rerun.output
    assert (
        "(0 new jobs, 3 already waiting)"
        in dqm("checks", "rerun", "--runs", "3", url=filled).output
    )
    with transaction(filled) as s:
        jobs = queries.list_jobs(s, kind=CHECKS_JOB_KIND)
        assert sorted(j.run_id for j in jobs) == [104, 105, 106]
        assert queries.get_run(s, run_id=106).status.value == "All Completed"  # not reopened
    assert dqm("checks", "rerun", "--type", "cosmics", url=filled).exit_code == 2


def test_migrated_database_is_needed(tmp_path: Path, dqm) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    migrate.upgrade(url)
    assert "no alarms." in dqm("alarms", url=url).output
