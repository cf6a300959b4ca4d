"""Checks through the job server, on every backend and both brokers: a clean run becomes the
reference, a faulty one is Bad for the right reason with its alarm, which the shifters hear of by
webhook and e-mail; a run still taking data is judged on what it has (TooFew); and the judgement
of a run does not depend on its sampling."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings, run_server, session, simulate

from dqm import broker
from dqm.alarms import alarm_key
from dqm.analyses.api import PmtStatistics, RunInfo, RunView
from dqm.checks.declarations import load_checks
from dqm.checks.evaluate import CheckInputs, evaluate
from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.session import transaction
from dqm.notify import SmtpChannel, WebhookChannel
from dqm.states import AlarmState, RunStatus
from pipeline.alarms import AlarmWatcher
from pipeline.stages import processing
from pipeline.stages.calib import CalibConstants
from pipeline.stages.reading import RawFile

sys.path.insert(0, str(Path(__file__).parents[1]))
from notifyservers import http_receiver, smtp_server


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_faulty_run_is_bad_for_the_right_reason_and_its_alarm_is_heard(
    tmp_path: Path, database_and_broker: tuple[str, str, str]
) -> None:
    settings = make_settings(tmp_path, *database_and_broker)
    simulate(settings, 901, n_files=1, events=1200)
    run_server(settings)
    simulate(settings, 902, n_files=1, events=1200, faults=("dead:n=30",))
    run_server(settings)

    catalog = load_checks()
    with session(settings) as s:
        clean = queries.get_run(s, run_id=901)
        assert clean.status == RunStatus.ALL_COMPLETED
        assert clean.quality in (Quality.GOOD, Quality.UNKNOWN, Quality.TOOFEW)
        results = {r.check_name: r for r in queries.check_results(s, run_id=902)}
        assert set(results) == {c.name for c in catalog.for_run("physics")}
        pmt = results["pmt_classes"]
        assert pmt.quality == Quality.BAD and pmt.reference_run == 901
        assert pmt.details["n_new_dead"] >= 30 and "30 new" in pmt.sentence
        assert queries.get_run(s, run_id=902).quality == Quality.BAD
        assert queries.run_stage_qualities(s, run_ids=[902])[902]["pmt"] == Quality.BAD
        alarm = next(a for a in queries.list_alarms(s) if a.key == alarm_key("pmt_classes", 902))
        assert alarm.state == AlarmState.OPEN and "check pmt_classes" in alarm.sentence
        alarm_id = alarm.id
    # each completed, checked run's report was written by the job server
    for run_id in (901, 902):
        report = (settings.data_dir / "reports" / f"run{run_id}.html").read_text()
        assert report.startswith("<!DOCTYPE html>") and f"<h1>Run {run_id}</h1>" in report
    assert "30 new" in (settings.data_dir / "reports" / "run902.html").read_text()

    # The alarm watcher tells the shifters, by webhook and e-mail, from threads of its own.
    with http_receiver() as hook, smtp_server() as mail:
        watcher = AlarmWatcher(
            settings.alarms,
            lambda: transaction(settings.database_url),
            [
                WebhookChannel(hook.url),
                SmtpChannel(mail.url, "dqm@example.org", ["shift@example.org"]),
            ],
            poll_s=0.1,
        )
        watcher.start()
        try:
            wait_for(lambda: any(str(alarm_id) in r.get("text", "") for r in hook.received))
            wait_for(lambda: len(mail.messages) > 0)
        finally:
            watcher.stop()
        notice = next(r for r in hook.received if r.get("alarm_id") == alarm_id)
        assert notice["severity"] == "Bad" and "run 902" in notice["text"]
        assert "page=run&run=902&tab=checks" in notice["url"]
    with session(settings) as s:
        alarm = queries.get_alarm(s, alarm_id=alarm_id)
        assert alarm.notifications >= 1 and alarm.notified_at is not None
        assert "notified" in [e.action for e in alarm.events]


def test_a_run_taking_data_is_judged_on_what_it_has(tmp_path: Path, sqlite_database: str) -> None:
    settings = make_settings(tmp_path, sqlite_database)

    def without_run_end(*messages) -> None:
        broker.publish(settings, *[m for m in messages if m.type != "run_end"])

    simulate(settings, 911, n_files=1, events=80, publish=without_run_end)
    run_server(settings)
    with session(settings) as s:
        run = queries.get_run(s, run_id=911)
        assert run.status == RunStatus.DATA_TAKING
        results = {r.check_name: r for r in queries.check_results(s, run_id=911)}
        assert results["pmt_classes"].quality == Quality.TOOFEW
        assert "80 events; the check needs 1,000" in results["pmt_classes"].sentence
        assert results["processing"].quality == Quality.GOOD
        assert run.quality in (Quality.TOOFEW, Quality.UNKNOWN)
        assert not queries.list_alarms(s, run_id=911)


# --- sampling: the same run judged alike at any sampling fraction ---------------------------------


@pytest.fixture(scope="module")
def sampled_runs(tmp_path_factory: pytest.TempPathFactory):
    """A reference, a clean run and a faulty one (dead PMTs and a gain drift), each processed with
    every event and with a fifth of them."""
    tmp = tmp_path_factory.mktemp("sampling")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'unused.sqlite'}")
    faults = {
        921: (),
        922: (),
        923: ("dead:n=25", "gain_drift:fraction=-0.1"),
    }
    views = {}
    for run_id, injected in faults.items():
        events = 4000 if run_id == 921 else 5500  # a fifth of 5,500 is above the 1,000 needed
        result = simulate(settings, run_id, n_files=1, events=events, notify=False, faults=injected)
        f = result.files[0]
        for fraction in (1.0, 0.2):
            out = processing.process_file(
                processing.FileTask(
                    file=RawFile(
                        path=f.path, run_id=run_id, seq=0, size=f.size, checksum=f.checksum
                    ),
                    calibration=CalibConstants.nominal(),
                    sampling_fraction=fraction,
                )
            )
            views[(run_id, fraction)] = RunView(
                run=RunInfo(run_id=run_id, run_type="physics", sampling_fraction=fraction),
                histograms=out.histograms,
                pmt=PmtStatistics(
                    n_events=out.n_events, livetime_ns=out.livetime_ns, sums=out.pmt_sums
                ),
            )
    return views


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [1.0, 0.2])
def test_faulty_is_bad_and_clean_is_good_at_any_sampling(sampled_runs, fraction: float) -> None:
    catalog = load_checks()
    checks = [catalog.get("pmt_classes"), catalog.get("pmt_gain_sectors")]
    reference = sampled_runs[(921, 1.0)]
    for run_id, expected in ((922, Quality.GOOD), (923, Quality.BAD)):
        view = sampled_runs[(run_id, fraction)]
        assert view.pmt is not None
        assert view.pmt.n_events == pytest.approx(5500 * fraction, rel=0.1)
        inputs = CheckInputs(run=view, reference=reference)
        for check in checks:
            outcome = evaluate(check, inputs)
            assert outcome.quality == expected, (run_id, fraction, check.name, outcome.sentence)
    faulty = evaluate(
        catalog.get("pmt_gain_sectors"),
        CheckInputs(run=sampled_runs[(923, fraction)], reference=reference),
    )
    assert faulty.details["worst_sector"] == 6  # φ from 0° to 30°
    assert np.isclose(faulty.details["effect"], -0.1, atol=0.05)


def test_the_worker_sees_no_database(sampled_runs) -> None:
    """The evaluation is pure: the same inputs, the same outcome, whatever the run's number."""
    catalog = load_checks()
    check = catalog.get("pmt_classes")
    inputs = CheckInputs(run=sampled_runs[(923, 1.0)], reference=sampled_runs[(921, 1.0)])
    first = evaluate(check, inputs)
    again = evaluate(check, dataclasses.replace(inputs))
    assert first == again


def test_a_run_judged_before_its_reference_completed_is_judged_again(
    tmp_path: Path, sqlite_database: str
) -> None:
    # runs complete out of order: 913 is judged against 911, then 912 completes and is 913's
    # (the same events in all three, so that each is clean against the others)
    settings = make_settings(tmp_path, sqlite_database)
    for run_id in (911, 913, 912):
        simulate(settings, run_id, n_files=1, events=1000, seed=7)
        run_server(settings)
    with session(settings) as s:
        assert queries.get_run(s, run_id=912).quality in queries.CLEAN_QUALITIES
        used = {r.reference_run for r in queries.check_results(s, run_id=913)} - {None}
        assert used == {912}
        checks_jobs = [j for j in queries.list_jobs(s, run_id=913) if j.kind == "checks"]
        assert len(checks_jobs) >= 2  # the first judgement, and the one against 912
