"""dqm signoff, certify, reopen, decisions and goodruns: the shift's decisions from the command line;
bad input is one line and exit code 2, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from judgedruns import fill_judged_runs

from dqm.cli import cli
from dqm.db import queries
from dqm.db.session import transaction
from dqm.states import JobState


@pytest.fixture
def dqm(sqlite_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DQM_CONFIG", raising=False)
    url = fill_judged_runs(sqlite_database)

    def run(*args: str):
        return CliRunner().invoke(
            cli, list(args), env={"DQM_DATABASE_URL": url, "USER": "ana"}, catch_exceptions=False
        )

    run.url = url  # type: ignore[attr-defined]
    return run


def test_a_run_is_signed_off_certified_and_listed(dqm) -> None:
    done = dqm("signoff", "103", "--comment", "all tabs fine")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("run 103: signed off by ana@cli (SIGNED_OFF, verdict Good).")
    bad = dqm("signoff", "104", "--stage", "calib=bad", "--comment", "odd charge spectrum")
    assert "verdict Bad" in bad.output and "calib Bad" in bad.output
    assert dqm("certify", "103").exit_code == 0
    assert dqm("certify", "104", "--comment", "agreed").exit_code == 0
    listed = dqm("goodruns")
    assert listed.exit_code == 0 and listed.output.strip().endswith("1 good run.")
    report = json.loads(dqm("goodruns", "--type", "physics", "--json").output)
    assert [r["run"] for r in report["good_runs"]] == [103]
    assert report["good_runs"][0]["check_versions"] == {"pmt_classes": 1}
    back = dqm("reopen", "103", "--reason", "reprocessed with the new calibration")
    assert back.exit_code == 0 and "(OPEN)" in back.output
    assert json.loads(dqm("goodruns", "--json").output) == {"good_runs": []}
    history = json.loads(dqm("decisions", "103", "--json").output)
    assert history["state"] == "OPEN"
    assert [d["action"] for d in history["decisions"]] == ["sign_off", "certify", "reopen"]
    assert "reprocessed" in dqm("decisions", "103").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("signoff", "103"), "Missing option '--comment'"),
        (("signoff", "103", "--comment", " "), "a sign-off needs a comment"),
        (("signoff", "103", "--stage", "hv=Good", "--comment", "x"), "there is no stage 'hv'"),
        (("signoff", "103", "--stage", "calib", "--comment", "x"), "--stage takes stage=Good"),
        (("signoff", "103", "--stage", "calib=ok", "--comment", "x"), "Good or Bad, not 'ok'"),
        (("signoff", "999", "--comment", "x"), "run 999 does not exist"),
        (("signoff", "103", "--comment", "x" * 3000), "at most 2,000 characters"),
        (("certify", "103"), "run 103 is not signed off yet"),
        (("reopen", "103", "--reason", "x"), "run 103 is open for sign-off already"),
        (("reopen", "103"), "Missing option '--reason'"),
        (("goodruns", "--since", "9", "--until", "3"), "--since 9 is above --until 3"),
        (("goodruns", "--type", "cosmics"), "'cosmics' is not one of"),
        (("decisions", "abc"), "'abc' is not a valid integer"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    dqm, args: tuple[str, ...], message: str
) -> None:
    done = dqm(*args)
    assert done.exit_code == 2 and message in done.output, done.output
    assert len(done.output.strip().splitlines()) == 1
    with transaction(dqm.url) as s:
        assert queries.run_decisions(s, run_id=103) == []


def test_reprocessing_a_certified_run_sends_it_back_to_sign_off(dqm) -> None:
    assert dqm("signoff", "103", "--comment", "fine").exit_code == 0
    assert dqm("certify", "103").exit_code == 0
    with transaction(dqm.url) as s:
        job = queries.add_job(s, kind="process_file", run_id=103)
        job.state, job.error = JobState.FAILED, "103.0.root is truncated"
        job_id = job.id
    refused = dqm("retry", str(job_id))
    assert refused.exit_code == 2
    assert "run 103 is certified: reprocessing it sends it back to sign-off" in refused.output
    with transaction(dqm.url) as s:
        assert queries.get_job(s, job_id=job_id).state is JobState.FAILED  # nothing changed
    done = dqm("retry", str(job_id), "--reason", "the new calibration")
    assert done.exit_code == 0, done.output
    history = json.loads(dqm("decisions", "103", "--json").output)
    assert history["state"] == "OPEN"
    assert history["decisions"][-1]["comment"] == "reprocessed: the new calibration"
    assert json.loads(dqm("goodruns", "--json").output) == {"good_runs": []}
