"""A shifter's way through a fault run in the browser: the alarm banner → the Alarms page → log in
and acknowledge with a comment → the banner's count goes down → the run's Checks tab shows the Bad
check → the histogram it looks at has a red frame."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from uihelpers import copy_installation, dashboard

from app.state import RUN_TABS
from dqm.alarms import alarm_key
from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.session import transaction
from dqm.states import AlarmState

pytestmark = pytest.mark.slow

PASSWORD = "shifter password of the day"
EXPERT_PASSWORD = "expert password of the day"


@pytest.fixture(scope="module")
def installation(demo_data, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """A copy of the demo installation: these tests acknowledge, save and sign off in it."""
    return copy_installation(demo_data.env, tmp_path_factory.mktemp("alarms-data") / "data")


@pytest.fixture(scope="module")
def server(installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    credentials = tmp_path_factory.mktemp("alarms") / "users.json"
    credentials.write_text(
        json.dumps(
            {
                "shifter": PASSWORD,  # a password alone: a shifter
                "expert": {"password": EXPERT_PASSWORD, "role": "expert"},
            }
        )
    )
    credentials.chmod(0o600)
    options = ("--credentials", str(credentials), "--refresh", "0")
    with dashboard(installation[0], *options, name="alarms-server") as served:
        yield served


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert "Traceback" not in page.content()


def _a_bad_histogram_check(s) -> None:
    """The faulty run's charge shape judged Bad, with its alarm: the demo's own judgements of its
    short runs depend on which runs were complete when each was evaluated."""
    import demo

    latest: dict[str, object] = {}
    for r in queries.check_results(s, run_id=demo.FAULTY_RUN):
        latest[r.check_name] = r
    kept = [
        queries.NewCheckResult(
            r.check_name,
            r.version,
            r.stage,
            r.quality,
            r.sentence,
            r.reference_run,
            r.statistics,
            dict(r.details or {}),
        )
        for r in latest.values()
        if r.check_name != "calib_charge_shape"
    ]
    sentence = (
        f"χ²/ndf = 41.2 against run {demo.GOOD_RUN} (p = 0), effect 0.031 (counts from 0.006); "
        "Bad below p = 1e-08."
    )
    bad = queries.NewCheckResult(
        "calib_charge_shape",
        2,
        "calib",
        Quality.BAD,
        sentence,
        reference_run=demo.GOOD_RUN,
        statistics=1_000_000.0,
        details={"histogram": "calib/charge_pe"},
    )
    queries.save_check_results(s, run_id=demo.FAULTY_RUN, results=[*kept, bad])
    queries.raise_alarm(
        s,
        key=alarm_key("calib_charge_shape", demo.FAULTY_RUN),
        kind="check",
        severity=Quality.BAD,
        sentence=f"run {demo.FAULTY_RUN}, check calib_charge_shape: {sentence}",
        check_name="calib_charge_shape",
        run_id=demo.FAULTY_RUN,
        run_type="physics",
    )


def test_from_the_banner_to_the_red_frame(server, page, installation) -> None:
    url, _log = server
    with transaction(installation[1]) as s:
        _a_bad_histogram_check(s)
    with transaction(installation[1]) as s:
        n_open = queries.alarm_counts(s).n_open
        # a run whose histogram check is Bad, and its alarm
        bad = next(
            r
            for alarm in queries.list_alarms(s, states=[AlarmState.OPEN])
            if alarm.run_id is not None
            for r in queries.check_results(s, run_id=alarm.run_id)
            if r.quality == Quality.BAD and r.details.get("histogram")
        )
        alarm = next(
            a for a in queries.list_alarms(s, run_id=bad.run_id) if a.check_name == bad.check_name
        )
        run_id, check, histogram, alarm_id = (
            bad.run_id,
            bad.check_name,
            bad.details["histogram"],
            alarm.id,
        )
    assert n_open >= 1

    _open(page, f"{url}/?page=runs")
    banner = page.locator(".alarm-banner").first
    banner.wait_for()
    assert f"{n_open} open alarm" in banner.inner_text()
    page.get_by_text("see the alarms").first.click()
    page.locator(".alarms-table").first.wait_for()
    page.locator(".tabulator-cell", has_text=check).first.wait_for()
    page.locator(".tabulator-cell", has_text=check).first.click()
    page.get_by_text("Log in to acknowledge or close an alarm.").first.wait_for()
    assert page.locator(".alarm-ack").count() == 0  # anonymous visitors only read

    _log_in(page, url)
    _open(page, f"{url}/?page=alarms")
    alarm_row = page.locator(".tabulator-row").filter(has_text=check).filter(has_text=str(run_id))
    alarm_row.first.locator(".tabulator-cell", has_text=check).first.click()
    page.get_by_text(f"Alarm {alarm_id}", exact=True).first.wait_for()
    page.locator(".tabulator-cell", has_text="opened").first.wait_for()  # its history
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Acknowledge", exact=True).first.click()
    page.get_by_text(
        re.compile(f"Alarm {alarm_id} not acknowledged: .*needs a comment")
    ).first.wait_for()
    page.locator(".alarm-comment textarea").first.fill("HV of the sector tripped; expert called")
    page.get_by_role("button", name="Acknowledge", exact=True).first.click()
    page.get_by_text(f"Alarm {alarm_id} acknowledged.").first.wait_for()
    if n_open > 1:
        page.get_by_text(f"{n_open - 1} open alarm").first.wait_for()
    else:
        page.get_by_text("No open alarm.").first.wait_for()
    with transaction(installation[1]) as s:
        acknowledged = queries.get_alarm(s, alarm_id=alarm_id)
        assert acknowledged.state == AlarmState.ACKNOWLEDGED
        assert acknowledged.acknowledged_by == "shifter"

    _open(page, f"{url}/?run={run_id}&tab=checks")
    table = page.locator(".checks-table").first
    table.wait_for()
    row = page.locator(".tabulator-row", has=page.locator(".tabulator-cell", has_text=check))
    row.first.wait_for()
    assert "Bad" in row.first.inner_text()
    page.locator(".run-quality .quality-bad").first.wait_for()  # the run's quality in its header

    stage = histogram.split("/")[0]
    _open(page, f"{url}/?run={run_id}&tab={stage}")
    frame = page.locator(".check-bad").first
    frame.wait_for()
    assert frame.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(213, 94, 0)"
    # the tab of the stage carries the stage's quality as a badge
    tab = page.locator(".bk-tab").nth(RUN_TABS.index(stage))
    assert tab.evaluate("e => getComputedStyle(e, '::after').content") == '"Bad"'


def _log_in(page, url: str, user: str = "shifter", password: str = PASSWORD) -> None:
    _open(page, f"{url}/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-submit, button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")


def _backtest_processing(page, url: str, **values: str) -> None:
    _open(page, f"{url}/?page=editor")
    page.locator(".editor-check select").first.select_option(label="Processing · processing v1")
    page.get_by_label("latency_bad_s", exact=True).first.wait_for()
    assert page.get_by_label("latency_bad_s", exact=True).first.input_value() == "3600"
    for name, value in values.items():
        field = page.get_by_label(name, exact=True).first
        field.fill(value)
        field.press("Enter")
    page.get_by_role("button", name="Back-test this check").first.click()
    page.locator(".backtest-table").first.wait_for()


def test_the_check_editor_backtests_then_saves(server, page, installation) -> None:
    import demo

    url, _log = server
    # no latency allowed at all: the finished runs that were Good would turn Bad
    _backtest_processing(page, url, latency_warning_s="0", latency_bad_s="0")
    page.get_by_text(re.compile(r"\d+ of \d+ runs would change: .*20001")).first.wait_for()
    table = page.locator(".backtest-table").first
    row = table.locator(".tabulator-row", has_text="20001").first
    assert re.search(r"Good\s+Bad", row.inner_text()), row.inner_text()
    page.get_by_text("Saving a change needs the expert role").first.wait_for()
    assert page.locator(".editor-save").count() == 0  # anonymous visitors try, not save

    # the PMT map's cuts, tried on past runs from the run's page
    _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
    page.get_by_role("button", name="Try these cuts on past runs").first.click()
    page.get_by_text("The cuts of the PMT map, ready to back-test").first.wait_for()
    page.get_by_role("button", name="Back-test these cuts").first.click()
    cuts_table = page.locator(".backtest-table").first
    cuts_table.locator(".tabulator-cell", has_text="pmt_classes").first.wait_for()

    _log_in(page, url)  # a shifter tries, but saving is an expert's
    _backtest_processing(page, url, latency_bad_s="7200")
    page.get_by_text(
        "Saving a change needs the expert role; shifter is a shifter."
    ).first.wait_for()
    assert page.locator(".editor-save").count() == 0
    _open(page, f"{url}/logout")

    _log_in(page, url, "expert", EXPERT_PASSWORD)
    _backtest_processing(page, url, latency_bad_s="7200")
    page.get_by_label("Why (kept in the changes)").first.fill("the demo's latency is long")
    save = page.get_by_role("button", name="Save as version 2 of processing")
    save.first.click()
    page.get_by_text(re.compile("Check processing saved as version 2")).first.wait_for()
    with transaction(installation[1]) as s:
        change = queries.changes(s, limit=1)[0]
        assert (change.user, change.action, change.target) == (
            "expert",
            "check_version",
            "processing",
        )
        assert change.detail["changed"] == {"latency_bad_s": 7200.0}


def _sign_off(page, url: str, run_id: int, decisions: dict[str, str], comment: str) -> None:
    _open(page, f"{url}/?run={run_id}&tab=certification")
    page.locator(".sign-off-comment textarea").first.wait_for()
    for stage, decision in decisions.items():
        page.locator(f".sign-off-{stage} .bk-btn", has_text=decision).first.click()
    page.locator(".sign-off-comment textarea").first.fill(comment)
    page.get_by_role("button", name="Sign off", exact=True).first.click()
    page.get_by_text(re.compile(f"Run {run_id} signed off: Signed off")).first.wait_for()


def test_a_shift_end_to_end(server, page, installation) -> None:
    """An alarm acknowledged, the bad run signed off Bad with a comment and the good one Good,
    the expert certifies both: the good-run list has the good run and not the bad one."""
    import demo

    url, _log = server
    with transaction(installation[1]) as s:
        drill, *_ = queries.raise_alarm(
            s,
            key=alarm_key("shift_drill", demo.FAULTY_RUN),
            kind="check",
            severity=Quality.BAD,
            sentence=f"run {demo.FAULTY_RUN}, check shift_drill: the shift's drill",
            check_name="shift_drill",
            run_id=demo.FAULTY_RUN,
            run_type="physics",
        )
        drill_id = drill.id

    _log_in(page, url)
    _open(page, f"{url}/?page=alarms")
    page.locator(".tabulator-cell", has_text="shift_drill").first.click()
    page.get_by_text(f"Alarm {drill_id}", exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")
    page.locator(".alarm-comment textarea").first.fill("dead sector seen; run to be signed off Bad")
    page.get_by_role("button", name="Acknowledge", exact=True).first.click()
    page.get_by_text(f"Alarm {drill_id} acknowledged.").first.wait_for()

    # a comment holding HTML and a script is shown as the text it is
    _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=base")
    typed = "<script>window.pwned = 1</script><b>sector 4</b> dark"
    page.locator(".comment-text textarea").first.fill(typed)
    page.get_by_role("button", name="Add comment", exact=True).first.click()
    page.get_by_text("Comment added.").first.wait_for()
    page.locator(".comment", has_text="<b>sector 4</b> dark").first.wait_for()
    assert page.evaluate("() => window.pwned") is None

    every_stage = ("calib", "rec", "pmt", "analyses", "processing")
    _sign_off(page, url, demo.FAULTY_RUN, {"pmt": "Bad"}, "40 dead and 8 hot PMTs: PMT stage Bad")
    _sign_off(page, url, demo.GOOD_RUN, dict.fromkeys(every_stage, "Good"), "all tabs fine")
    assert page.locator(".certify").count() == 0  # certifying is an expert's
    _open(page, f"{url}/logout")

    _log_in(page, url, "expert", EXPERT_PASSWORD)
    for run_id in (demo.FAULTY_RUN, demo.GOOD_RUN):
        _open(page, f"{url}/?run={run_id}&tab=certification")
        page.get_by_role("button", name="Certify", exact=True).first.click()
        page.get_by_text(re.compile(f"Run {run_id} certified: Certified")).first.wait_for()
    page.locator(".decisions-table .tabulator-cell", has_text="expert").first.wait_for()

    _open(page, f"{url}/?page=runs")
    with page.expect_download() as download:
        page.locator(".good-runs-download .bk-btn").first.click()
    rows = download.value.path().read_text().splitlines()
    runs = [int(line.split(",")[0]) for line in rows[1:]]
    assert rows[0].startswith("run,run_type,") and demo.GOOD_RUN in runs
    assert demo.FAULTY_RUN not in runs
    with transaction(installation[1]) as s:
        assert [d.action for d in queries.run_decisions(s, run_id=demo.FAULTY_RUN)] == [
            "sign_off",
            "certify",
        ]
        assert queries.get_run(s, run_id=demo.FAULTY_RUN).verdict == Quality.BAD
