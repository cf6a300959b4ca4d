"""The run's Certification tab as state: a shifter signs off from the automatic quality, an expert
certifies or sends back; each refused to the roles below, in one sentence; the recent runs show
and filter the sign-off state; the good-run list for download."""

from __future__ import annotations

import pytest
from judgedruns import fill_judged_runs

from app.source import GOOD_RUN_COLUMNS, Source
from app.state import RecentRuns, RunState
from dqm.db import queries
from dqm.db.session import transaction
from dqm.users import Role


@pytest.fixture
def source(sqlite_database: str) -> Source:
    return Source(fill_judged_runs(sqlite_database))


def test_a_shift_signs_off_and_an_expert_certifies(source: Source) -> None:
    viewer = RunState(source=source, run_id=105, user="vic", role=Role.VIEWER)
    certification = viewer.certification
    assert certification is not None and certification.state == "OPEN"
    assert certification.description == "Open" and certification.decisions.empty
    assert certification.automatic == {"analyses": "Warning", "pmt": "Bad"}
    assert certification.form["pmt"] == "Bad" and certification.form["analyses"] == "Good"
    viewer.decide("sign_off", "fine")
    assert (
        viewer.notice
        == "Run 105 not signed off: signing a run off needs the shifter role; vic is a viewer."
    )

    shifter = RunState(source=source, run_id=105, user="sam", role=Role.SHIFTER)
    shifter.decide("sign_off", "  ")
    assert shifter.notice.endswith("a sign-off needs a comment (what was seen, what was done).")
    shifter.decide("sign_off", "PMT map: 31 dead in one sector", {"pmt": "Bad", "hv": "Good"})
    assert "there is no stage 'hv'" in shifter.notice
    shifter.decide("sign_off", "PMT map: 31 dead in one sector", {"analyses": "Bad"})
    assert shifter.notice == "Run 105 signed off: Signed off · Bad."
    assert shifter.certification is not None
    (decision,) = shifter.certification.decisions.itertuples()
    assert (decision.action, decision.user, decision.role) == ("sign_off", "sam", "shifter")
    assert "pmt Bad" in decision.stages and "analyses Bad" in decision.stages
    shifter.decide("certify", "")
    assert shifter.notice.endswith("certifying a run needs the expert role; sam is a shifter.")

    expert = RunState(source=source, run_id=105, user="eve", role=Role.EXPERT)
    expert.decide("certify", "agreed")
    assert expert.notice == "Run 105 certified: Certified · Bad."
    shifter.refresh()  # another session sees it
    assert shifter.certification is not None and shifter.certification.state == "CERTIFIED"
    shifter.decide("sign_off", "again")
    assert "run 105 is certified: an expert sends it back to sign-off first" in shifter.notice
    expert.decide("reopen", "")
    assert expert.notice.endswith("sending a run back to sign-off needs the reason.")
    expert.decide("reopen", "the PMTs were masked by mistake")
    assert expert.notice == "Run 105 sent back to sign-off: Open."
    assert list(expert.certification.decisions["action"]) == ["sign_off", "certify", "reopen"]


def test_the_certification_tab_carries_the_sign_off_state(source: Source) -> None:
    from app.state import RUN_TABS
    from app.views import tab_badges_css

    tab = RUN_TABS.index("certification") + 1
    checks = RUN_TABS.index("checks") + 1
    run = RunState(source=source, run_id=105, user="eve", role=Role.EXPERT)
    css = tab_badges_css(None, run.certification)
    assert f'.bk-tab:nth-child({tab})::after {{ content: "Open"' in css and "#DDD" in css
    run.decide("sign_off", "PMT map: 31 dead in one sector", {"analyses": "Bad"})
    run.decide("certify", "agreed")
    css = tab_badges_css(run.checks, run.certification)
    assert f'.bk-tab:nth-child({tab})::after {{ content: "Certified · Bad"' in css
    assert f'.bk-tab:nth-child({checks})::after {{ content: "Bad"' in css  # the checks' stays


def test_the_recent_runs_show_and_filter_the_sign_off_state(source: Source) -> None:
    shifter = RunState(source=source, run_id=104, user="sam", role=Role.SHIFTER)
    shifter.decide("sign_off", "all tabs fine")
    expert = RunState(source=source, run_id=104, user="eve", role=Role.EXPERT)
    expert.decide("certify", "")
    runs = RecentRuns(source=source)
    shown = dict(zip(runs.runs["run_id"], runs.runs["certification"], strict=True))
    assert shown[104] == "Certified · Good" and shown[105] == "Open"
    runs.certifications = ["CERTIFIED"]
    assert list(runs.runs["run_id"]) == [104]
    runs.certifications = ["OPEN"]
    assert 104 not in list(runs.runs["run_id"]) and 105 in list(runs.runs["run_id"])
    runs.certifications = ["Not open"]
    assert runs.runs.empty and runs.message == "No run matches these filters."
    good = source.good_runs()
    assert list(good.columns) == GOOD_RUN_COLUMNS and list(good["run"]) == [104]
    assert good["check_versions"].iloc[0] == "pmt_classes:1"
    assert source.good_runs(["laser"]).empty


def test_the_shift_overview_reads_every_tile_and_says_which_it_cannot(source: Source) -> None:
    from app.main import DQMApp
    from app.overviewview import tile_html
    from app.source import TILES
    from dqm.db import queries
    from dqm.db.session import transaction

    with transaction(source.database_url) as s:
        queries.add_run(
            s,
            run_id=107,
            run_type="physics",
            start_time=queries.get_run(s, run_id=106).end_time,
        )
        queries.add_file(s, run_id=107, seq=0, uri="107.0.root", n_events=1200)
    app = DQMApp(source=source, refresh_s=0)
    assert app.page == "overview" and type(app.view).__name__ == "OverviewView"
    tiles = app.overview_state.tiles
    assert set(tiles) == set(TILES) and not any("error" in t for t in tiles.values())
    assert tiles["current_run"]["run"] == 107 and tiles["current_run"]["events"] == 1200
    assert tiles["processing"]["waiting"] == 1 and tiles["processing"]["lag_s"] > 0
    assert tiles["alarms"]["open"] == {"Bad": 1}
    assert [r[0] for r in tiles["last_runs"]["runs"]][:2] == [107, 106]
    assert tiles["sign_off"]["counts"] == {"OPEN": 6, "SIGNED_OFF": 0}
    assert tiles["health"]["server_quiet"]  # a file waits and no job ever changed
    for name in TILES:
        text = tile_html(name, tiles[name])
        assert f"tile-{name}" in text and "tile-error" not in text
    assert "107" in tile_html("current_run", tiles["current_run"])
    # one tile that cannot be read says so; the others are read as ever
    source._tile_alarms = lambda *a: 1 / 0  # type: ignore[method-assign]
    try:
        app.overview_state.refresh()
    finally:
        del source._tile_alarms
    broken = app.overview_state.tiles
    assert broken["alarms"] == {"error": "cannot be read now: division by zero"}
    assert "tile-error" in tile_html("alarms", broken["alarms"])
    assert broken["current_run"]["run"] == 107
    app.refresh()  # the periodic refresh reads the tiles again
    assert "error" not in app.overview_state.tiles["alarms"]


def test_comments_thread_on_the_run_its_histograms_and_pmts(source: Source) -> None:
    import datetime as dt

    from app.main import DQMApp
    from app.views import comments_html

    viewer = RunState(source=source, run_id=105, user="vic", role=Role.VIEWER)
    viewer.add_comment("looks odd")
    assert viewer.notice == "Comment not added: commenting needs the shifter role; vic is a viewer."
    shifter = RunState(source=source, run_id=105, user="sam", role=Role.SHIFTER)
    shifter.add_comment("<b>31 dead</b> <script>alert(1)</script>", target="pmt:4321")
    assert shifter.notice == "Comment added."
    first = int(shifter.comments["id"].iloc[0])
    shifter.add_comment("HV trip at 02:10", parent_id=first)
    shifter.add_comment("tail high", target="histogram:calib/charge_pe")
    shifter.add_comment("x" * 1_048_576)
    assert shifter.notice.startswith("Comment not added: a comment holds at most 2,000")
    shifter.add_comment("on nothing", target="pmt:99999")
    assert "there is no PMT '99999'" in shifter.notice
    comments = shifter.comments
    assert list(comments["target"]) == ["pmt:4321", "pmt:4321", "histogram:calib/charge_pe"]
    text = comments_html(comments)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;31 dead&lt;/b&gt;" in text  # shown as typed, never rendered
    assert text.index("HV trip") > text.index("31 dead")  # the reply under its comment
    on_histogram = comments_html(comments, target="histogram:calib/charge_pe")
    assert "tail high" in on_histogram and "HV trip" not in on_histogram
    assert "tail high" not in comments_html(comments, prefix="pmt:")

    # a shifter's next visit: the runs commented since are marked
    before = dt.datetime(2000, 1, 1)
    with transaction(source.database_url) as s:
        queries.record_visit(s, user="eve", now=before)
    app = DQMApp(source=source, refresh_s=0, user="eve", role=Role.EXPERT, page="runs")
    runs = app.runs_state.runs.set_index("run_id")
    assert runs.loc[105, "new_comments"] == 3 and runs.loc[104, "new_comments"] == 0
    again = DQMApp(source=source, refresh_s=0, user="eve", role=Role.EXPERT, page="runs")
    assert again.runs_state.runs["new_comments"].sum() == 0  # nothing since the last visit
