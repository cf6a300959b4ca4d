"""The dashboard's state classes and navigation, on a small database (no server, no browser)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import hist
import numpy as np
import panel as pn
import pytest

from app.main import DQMApp
from app.source import Source
from app.state import RUN_TABS, AlarmsState, JobsState, RecentRuns, RunState, parse_run_id
from dqm import detector, pmtstats
from dqm.checks.quality import Quality
from dqm.db import migrate, queries
from dqm.db.models import FileState, JobState, RunStatus
from dqm.db.session import transaction
from dqm.users import Role

T0 = dt.datetime(2026, 11, 1, 8, 0)


def _energy(mean: float, n: int = 1000) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(50, 0, 5, name="energy", label="visible energy [MeV]"))
    h.fill(np.random.default_rng(int(mean * 10)).normal(mean, 0.1, n))
    return h


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    url = f"sqlite:///{tmp_path_factory.mktemp('app') / 'dqm.sqlite'}"
    migrate.upgrade(url)
    n = detector.N_PMTS
    with transaction(url) as s:
        for k, (run_type, status) in enumerate(
            [
                ("physics", RunStatus.ALL_COMPLETED),
                ("laser", RunStatus.ALL_COMPLETED),
                ("physics", RunStatus.ALL_COMPLETED),
                ("physics", RunStatus.REC_RUNNING),
            ]
        ):
            run_id = 100 + k
            queries.add_run(
                s,
                run_id=run_id,
                run_type=run_type,
                start_time=T0 + dt.timedelta(hours=k),
                end_time=T0 + dt.timedelta(hours=k, minutes=30),
                status=status,
                n_events=1000,
                n_files=1,
                rec_method="tlh",
            )
            f = queries.add_file(
                s, run_id=run_id, seq=0, uri=f"/raw/{run_id}.0.root", n_events=1000
            )
            f.state = FileState.DONE
            if status is RunStatus.ALL_COMPLETED:
                queries.save_histogram(
                    s,
                    run_id=run_id,
                    file_id=None,
                    stage="rec",
                    name="energy",
                    histogram=_energy(1.0 + k),
                    title="Visible energy",
                    provenance={"rec_method": "tlh", "calibration_version": 0},
                )
                arrays = {name: np.zeros(n) for name in pmtstats.PMT_ARRAYS}
                arrays["fired_events"][:] = 100  # hit rate 10%
                arrays["fired_events"][:40] = 0  # dead
                arrays["fired_events"][40:48] = 1000  # hot
                arrays["hit_count"][:] = arrays["fired_events"]
                arrays["charge_sum"][:] = arrays["fired_events"] * 1.1
                queries.save_pmt_stats(
                    s, run_id=run_id, file_id=None, n_events=1000, livetime_ns=1e6, arrays=arrays
                )
        # Checks judged the completed runs: 102's energy shape is Bad, with its alarm.
        good = queries.NewCheckResult("pmt_classes", 1, "pmt", Quality.GOOD, "0 new dead")
        for run_id in (100, 101):
            queries.save_check_results(s, run_id=run_id, results=[good])
        bad = queries.NewCheckResult(
            "rec_energy_shape",
            1,
            "rec",
            Quality.BAD,
            "χ²/ndf = 9 against run 100 (p = 1e-20); Bad below p = 1e-08.",
            reference_run=100,
            statistics=5000.0,
            details={"histogram": "rec/energy"},
        )
        queries.save_check_results(s, run_id=102, results=[good, bad])
        queries.raise_alarm(
            s,
            key="check:rec_energy_shape:102",
            kind="check",
            severity=Quality.BAD,
            sentence="run 102, check rec_energy_shape: χ²/ndf = 9",
            check_name="rec_energy_shape",
            run_id=102,
            run_type="physics",
        )
    return Source(url)


def test_parse_run_id() -> None:
    assert parse_run_id("10004") == (10004, "")
    assert parse_run_id(" ") == (None, "")
    assert parse_run_id("abc")[1].startswith("'abc' is not a run number")
    assert parse_run_id("-3")[0] is None


def test_recent_runs_modes_filters_and_search(source: Source) -> None:
    state = RecentRuns(source=source)
    assert list(state.runs["run_id"]) == [103, 102, 101, 100]  # newest end time first
    state.mode = "Recent Completed"
    assert 103 not in set(state.runs["run_id"])
    state.param.update(mode="Recent Runs", run_types=["laser"])
    assert list(state.runs["run_id"]) == [101]
    state.param.update(run_types=[], statuses=["Rec Running"])
    assert list(state.runs["run_id"]) == [103]
    state.param.update(statuses=[], search="abc")
    assert state.runs.empty and "is not a run number" in state.message
    state.search = "999999"
    assert state.runs.empty and state.message == "There is no run 999999."
    state.search = "102"
    assert list(state.runs["run_id"]) == [102] and state.message == ""
    assert set(state.param.run_types.objects) == {"physics", "laser"}


def test_run_state_summary_histograms_reference_and_pmts(source: Source) -> None:
    state = RunState(source=source, run_id=102)
    assert state.summary.status == "All Completed" and state.summary.run_type == "physics"
    assert state.summary.files_done == 1 and len(state.summary.files) == 1
    assert list(state.summary.files.columns) == ["seq", "file", "state", "job", "error", "events"]
    (energy,) = state.histograms["rec"]
    assert energy.title == "Visible energy" and energy.histogram.sum() > 0
    assert state.reference_run_id == 100  # the latest All Completed physics run before it
    assert "energy" in state.reference["rec"]
    assert state.pmt is not None and state.pmt.n_dead == 40 and state.pmt.n_hot == 8
    assert state.root_file().read(4) == b"root"
    state.run_id = 103  # processing: no histograms, no PMT statistics yet
    assert state.histograms["rec"] == [] and state.pmt is None
    state.run_id = 999
    assert state.summary is None and state.message == "There is no run 999 in the database."


@pytest.mark.parametrize(
    ("url", "page", "message"),
    [
        ({"page": "run", "run": "102", "tab": "pmt"}, "run", ""),
        ({"page": "run", "run": "999999"}, "runs", "There is no run 999999 in the database."),
        ({"page": "run", "run": "abc"}, "runs", "'abc' is not a run number"),
        ({"page": "run", "run": "102", "tab": "nonsense"}, "run", "There is no tab 'nonsense'"),
        ({"page": "elsewhere"}, "runs", "There is no page 'elsewhere'"),
    ],
)
def test_url_parameters_give_a_page_or_a_friendly_message(
    source: Source, url: dict, page: str, message: str
) -> None:
    app = DQMApp(source=source, refresh_s=0, **url)
    shown = type(app.view).__name__
    assert shown == {"run": "RunPage", "runs": "RecentRunsView"}[page]
    assert app._message.visible == bool(message)
    assert message in (app._message.object or "")
    app.__panel__()  # the layout builds


def test_clicking_a_run_opens_it(source: Source) -> None:
    app = DQMApp(source=source, refresh_s=0)
    app.open_run(100)
    assert (app.page, app.run, app.tab) == ("run", "100", "base")
    assert type(app.view).__name__ == "RunPage"
    app.page = "jobs"
    assert type(app.view).__name__ == "JobsView"


def test_dashboard_never_imports_the_pipeline(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import sys, app.main, app.cli; sys.exit('pipeline' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_refresh_replaces_only_what_changed(source: Source) -> None:
    runs = RecentRuns(source=source)
    table = runs.runs
    runs.refresh()
    assert runs.runs is table  # unchanged: the table on the page is not re-sent
    state = RunState(source=source, run_id=102)
    summary, histograms, pmt = state.summary, state.histograms, state.pmt
    hit_rate = pmt.hit_rate
    state.load()
    assert state.summary is summary and state.histograms is histograms
    assert state.pmt is pmt and pmt.hit_rate is hit_rate


def test_the_runs_table_patches_changed_rows_and_keeps_its_height(source: Source) -> None:
    from app.views import RecentRunsView

    runs = RecentRuns(source=source)
    view = RecentRunsView(state=runs)
    view.__panel__()
    table = view._table
    shown, height = table.value, table.min_height
    assert len(shown) >= 2 and height > 0
    patched: list[int] = []
    patch = table.patch
    # (Panel's patch calls itself again with a dict of columns: only the frames are ours.)
    table.patch = lambda rows, **kw: (
        patched.append(len(rows)) if hasattr(rows, "columns") else None,
        patch(rows, **kw),
    )
    failed = runs.runs.copy()
    failed.loc[1, "status"] = "Failed"
    runs.runs = failed  # as many runs: the changed row is patched into the table shown
    assert table.value is shown and list(table.value["Status"])[1] == "Failed"
    assert table.min_height == height and patched == [1]
    runs.runs = failed.copy()  # nothing new (NaN where NaN was): nothing patched
    assert table.value is shown and patched == [1]
    runs.runs = failed.iloc[:1]  # fewer runs: a new table, and the height follows
    assert table.value is not shown and len(table.value) == 1
    assert table.min_height < height


def test_jobs_page_figures(source: Source) -> None:
    assert source.job_durations().empty  # no job has run in this database
    assert set(source.recent_failures().columns) >= {"job", "kind", "error"}
    app = DQMApp(source=source, refresh_s=0, page="jobs")
    durations = app.jobs_state.durations
    assert list(durations.columns) == ["kind", "done", "median_s", "p95_s", "max_s"]


def test_jobs_state_reads_on_refresh_and_retries_for_logged_in_users_only(
    source: Source,
) -> None:
    with transaction(source.database_url) as s:
        job = queries.add_job(s, kind="process_file", run_id=103)
        job.state, job.error = JobState.FAILED, "103.0.root is truncated"
        job_id = job.id
    try:
        anonymous = JobsState(source=source, user="guest")
        assert anonymous.counts == {} and anonymous.failures.empty  # nothing read yet
        anonymous.refresh()
        assert anonymous.counts.get("FAILED") == 1 and not anonymous.may("retry_job")
        assert list(anonymous.failures["job"]) == [job_id]
        anonymous.retry(job_id)
        assert anonymous.notice.startswith(
            f"Job {job_id} not retried: retrying a job needs a login"
        )
        viewer = JobsState(source=source, user="vic", role=Role.VIEWER)
        viewer.retry(job_id)
        assert viewer.notice.endswith("retrying a job needs the shifter role; vic is a viewer.")
        expert = JobsState(source=source, user="ana", role=Role.SHIFTER)
        expert.retry(job_id)
        assert expert.notice == f"Job {job_id} is back to TODO: the job server will run it again."
        assert expert.failures.empty and expert.counts.get("TODO") == 1  # read again
        assert expert.changes["action"].iloc[0] == "retry_job"
    finally:
        with transaction(source.database_url) as s:
            s.delete(queries.get_job(s, job_id=job_id))


def test_writes_need_a_user_and_saved_cuts_are_where_the_next_run_starts(source: Source) -> None:
    anonymous = RunState(source=source, run_id=102, user="guest")
    assert not anonymous.may("comment")
    anonymous.set_comment("nobody")
    assert anonymous.notice.startswith("Not saved: commenting needs a login")
    shifter = RunState(source=source, run_id=102, user="sam", role=Role.SHIFTER)
    shifter.pmt.dead_cut = 0.03
    shifter.save_cuts_as_default()  # the cuts of a run type are an expert's
    assert shifter.notice == (
        "Not saved: changing the PMT cuts of a run type needs the expert role; sam is a shifter."
    )
    expert = RunState(source=source, run_id=102, user="ana", role=Role.EXPERT)
    expert.set_comment("beam-off test")
    assert expert.notice == "Comment saved." and expert.summary.comment == "beam-off test"
    expert.pmt.dead_cut = 0.02
    expert.save_cuts_as_default()
    assert expert.notice == "Saved as the default cuts of physics runs."
    assert expert.cut_defaults["saved_by"] == "ana"
    other = RunState(source=source, run_id=100)
    assert other.pmt.dead_cut == 0.02 and other.cut_defaults["dead_cut"] == 0.02
    changes = source.recent_changes()
    assert list(changes["action"])[:2] == ["cut_defaults", "run_comment"]


def test_a_refresh_reads_the_run_again_only_when_it_changed(source: Source) -> None:
    state = RunState(source=source, run_id=101)
    calls = []
    original = source.histograms
    source.histograms = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        state.refresh()
        assert calls == []  # nothing changed: only the change token was read
        with transaction(source.database_url) as s:
            queries.update_run(s, run_id=101, comment="changed behind the page's back")
        state.refresh()
        assert calls and state.summary.comment == "changed behind the page's back"
    finally:
        del source.histograms


def test_navigation_updates_the_page_shown_and_never_builds_it_again(source: Source) -> None:
    app = DQMApp(source=source, refresh_s=0, page="run", run="102", tab="base")
    page = app.view
    layout = page.__panel__()
    app.tab = "rec"  # another tab of the same run
    assert app.view is page and page.__panel__() is layout and page._tabs.active == 2
    app.run = "100"  # another run: the same page, the run's data
    assert app.view is page and page.__panel__() is layout
    assert app.run_state.summary.run_id == 100
    app.page = "runs"
    runs = app.view
    runs_layout = runs.__panel__()
    app.param.update(page="run", run="102")
    app.page = "runs"
    assert app.view is runs and runs.__panel__() is runs_layout


def test_quality_in_the_runs_the_checks_tab_and_the_frames(source: Source) -> None:
    runs = RecentRuns(source=source)
    assert dict(zip(runs.runs["run_id"], runs.runs["quality"], strict=True)) == {
        103: "",
        102: "Bad",
        101: "Good",
        100: "Good",
    }
    runs.qualities = ["Bad"]
    assert list(runs.runs["run_id"]) == [102]
    runs.qualities = ["Good", "Not judged"]
    assert list(runs.runs["run_id"]) == [103, 101, 100]
    state = RunState(source=source, run_id=102)
    checks = state.checks
    assert checks is not None and checks.quality == "Bad"
    assert checks.stages == {"pmt": "Good", "rec": "Bad"}
    assert checks.frames == {"rec/energy": "Bad"}  # the histogram the Bad check looks at
    assert list(checks.checks["check"]) == ["pmt_classes", "rec_energy_shape"]
    assert checks.checks["looks_at"].iloc[1] == "rec/energy"
    assert checks.reference_run == 100 and "latest completed physics run" in checks.reference_reason
    # pinning: refused without a login, recorded with one
    state.pin_reference("100", for_type=False)
    assert state.notice.startswith("Not pinned: pinning the reference of a run needs a login")
    shifter = RunState(source=source, run_id=102, user="sam", role=Role.SHIFTER)
    shifter.pin_reference("100", for_type=True)  # for a run type: an expert's
    assert shifter.notice.endswith("needs the expert role; sam is a shifter.")
    writer = RunState(source=source, run_id=102, user="ana", role=Role.SHIFTER)
    writer.pin_reference("10x", for_type=False)
    assert "is not a run number" in writer.notice
    writer.pin_reference("101", for_type=False)
    assert writer.notice == (
        "Not pinned: run 101 is a laser run; the reference of physics runs must be one too."
    )
    writer.pin_reference("100", for_type=False, comment="a test")
    assert writer.notice.startswith("Reference of run 102: run 100")
    assert "pinned for run 102 by ana" in writer.checks.reference_reason
    writer.pin_reference("", for_type=False)
    assert "lifted" in writer.notice and "latest completed" in writer.checks.reference_reason


def test_alarms_banner_page_acknowledge_and_close(source: Source) -> None:
    anonymous = AlarmsState(source=source)
    anonymous.refresh()
    assert anonymous.open_counts == {"Bad": 1} and anonymous.n_open == 1
    (alarm_id,) = list(anonymous.alarms["id"])
    anonymous.acknowledge(alarm_id, "looked at it")
    assert anonymous.notice == (
        f"Alarm {alarm_id} not acknowledged: acknowledging an alarm needs a login (as shifter or "
        "above): anonymous visitors only read."
    )
    shifter = AlarmsState(source=source, user="ana", role=Role.SHIFTER)
    shifter.refresh()
    shifter.acknowledge(None, "x")
    assert shifter.notice == "Choose an alarm in the table first."
    shifter.acknowledge(alarm_id, "  ")
    assert "needs a comment" in shifter.notice
    shifter.acknowledge(alarm_id, "energy scale being checked by the calibration expert")
    assert shifter.notice == f"Alarm {alarm_id} acknowledged."
    assert shifter.n_open == 0 and shifter.acknowledged_counts == {"Bad": 1}
    assert list(shifter.history["action"]) == ["opened", "acknowledged"]
    assert anonymous.refresh_counts() and anonymous.n_open == 0  # the banner follows
    assert not anonymous.refresh_counts()  # nothing changed: one token query
    shifter.states = ["RESOLVED"]
    assert shifter.alarms.empty and shifter.message == "No alarm matches these filters."
    shifter.states = []
    shifter.run = "abc"
    assert "is not a run number" in shifter.message
    shifter.run = "102"
    shifter.close(alarm_id, "known: the source run was mislabelled")
    assert shifter.notice.endswith("closing an alarm needs the expert role; ana is a shifter.")
    expert = AlarmsState(source=source, user="eve", role=Role.EXPERT, run="102", states=[])
    expert.close(alarm_id, "known: the source run was mislabelled")
    assert expert.alarms["state"].tolist() == ["RESOLVED"]
    assert expert.alarms["resolved_by"].tolist() == ["eve"]


def test_a_run_page_builds_a_tab_when_it_is_first_shown(source: Source) -> None:
    from app.views import TAB_TITLES, RunPage

    assert tuple(TAB_TITLES) == RUN_TABS
    page = RunPage(state=RunState(source=source, run_id=102), tab="rec")
    pn.panel(page).get_root()
    built = {tab for tab, holder in page._tab_holders.items() if holder.objects}
    assert built == {"rec"}  # neither the map of the PMT tab nor the other stages' plots
    assert [page._tabs._names[i] for i in range(len(RUN_TABS))] == list(TAB_TITLES.values())
    page.tab = "pmt"  # a badge or the URL
    page._tabs.active = RUN_TABS.index("calib")  # a click on the tab
    built = {tab for tab, holder in page._tab_holders.items() if holder.objects}
    assert built == {"rec", "pmt", "calib"} and page.tab == "calib"
