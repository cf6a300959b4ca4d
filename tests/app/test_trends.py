"""Trends of analysis variables as state (no server, no browser): the choice and its defaults,
the filters, the x axes, the incremental refresh and bad URL parameters."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from analysesdata import FIRST_RUN, N_RUNS, add_run, fill, save_result
from bokeh.document import Document
from imports import modules_loaded

from app.source import Source
from app.trends import SERIES_COLUMNS, TrendsState, parse_trend_arguments
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.users import Actor, Role

LAST = FIRST_RUN + N_RUNS - 1


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A database of analysis results that the tests only read."""
    url = f"sqlite:///{tmp_path_factory.mktemp('trends') / 'dqm.sqlite'}"
    migrate.upgrade(url)
    fill(url)
    yield Source(url)
    dispose_engines()


@pytest.fixture
def changing_source(sqlite_database: str) -> Source:
    """The same database, for a test that adds and changes results."""
    fill(sqlite_database)
    return Source(sqlite_database)


class CountingSource(Source):
    """A Source that counts the trends it reads, and remembers their ``after_run``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[int | None] = []

    def trend(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.reads.append(kwargs.get("after_run"))
        return super().trend(*args, **kwargs)


def test_the_trends_state_loads_neither_panel_nor_bokeh() -> None:
    assert modules_loaded(["app.trends"], ["panel", "bokeh", "holoviews"]) == []


def runs(state: TrendsState, variable: str = "peak_mev") -> list[int]:
    return list(state.series[variable]["run_id"])


def test_the_catalog_holds_declared_versions_and_those_with_results_only(source: Source) -> None:
    catalog = {(c.analysis, c.version): c for c in source.analysis_catalog()}
    assert set(catalog) == {("energy_scale", 1), ("energy_scale", 2), ("legacy", 3)}
    v1 = catalog["energy_scale", 1]
    assert v1.declared and v1.n_results == N_RUNS and v1.label == "energy_scale v1"
    assert v1.variable("peak_mev").expected == (2.1, 2.3)
    assert v1.variable("peak_mev").unit == "MeV"
    legacy = catalog["legacy", 3]
    assert not legacy.declared and [v.name for v in legacy.variables] == ["dark_rate"]
    assert legacy.variables[0].unit == "kHz"


def test_an_empty_choice_opens_the_first_analysis_with_results(source: Source) -> None:
    state = TrendsState(source=source)
    assert (state.analysis, state.version, state.variables) == ("energy_scale", 1, ["peak_mev"])
    points = state.series["peak_mev"]
    assert list(points.columns) == SERIES_COLUMNS and state.message == ""
    assert runs(state) == list(range(FIRST_RUN, LAST + 1))
    assert list(points["rank"]) == list(range(N_RUNS))
    assert list(points.loc[points["outside"] == 1, "run_id"]) == [107, 113]
    np.testing.assert_allclose(points["upper"] - points["lower"], 0.02)
    assert points["time"].is_monotonic_increasing
    assert state.arguments() == {
        "analysis": "energy_scale",
        "version": "1",
        "variables": "peak_mev",
    }


def test_several_variables_share_their_ranks(source: Source) -> None:
    state = TrendsState(source=source, analysis="energy_scale", version=1)
    state.variables = ["peak_mev", "resolution"]
    assert set(state.series) == {"peak_mev", "resolution"}
    assert np.isnan(state.series["resolution"]["error"]).all()  # no error given
    assert list(state.series["resolution"]["rank"]) == list(state.series["peak_mev"]["rank"])


def test_filters(source: Source) -> None:
    state = TrendsState(source=source, analysis="energy_scale", variables=["peak_mev"])
    state.run_types = ["calibration"]
    assert runs(state) == [105, 110]
    assert list(state.series["peak_mev"]["rank"]) == [0, 1]  # ranks among the runs shown
    state.param.update(run_types=[], min_run=110, max_run=112)
    assert runs(state) == [110, 111, 112]
    state.param.update(min_run=None, max_run=None, days=3.5)  # runs 117, 118, 119
    assert runs(state) == [117, 118, 119]
    state.param.update(days=None, include_tags=["messy"])
    assert runs(state) == [104, 106]
    state.param.update(include_tags=["messy", "good"])
    assert runs(state) == [106]
    state.param.update(include_tags=[], exclude_tags=["bad", "messy"])
    assert {103, 104, 106}.isdisjoint(runs(state)) and len(runs(state)) == N_RUNS - 3
    state.param.update(exclude_tags=[], min_run=500)
    assert state.series["peak_mev"].empty
    assert state.message == "No run with a result matches these filters."


def test_the_x_axis_changes_nothing_that_is_read(source: Source) -> None:
    counting = CountingSource(source.database_url)
    state = TrendsState(source=counting, analysis="energy_scale", variables=["peak_mev"])
    series = state.series
    for x in ("rank", "time", "run"):
        state.x_axis = x
    assert counting.reads == [None] and state.series is series


def test_a_refresh_reads_only_the_new_points(changing_source: Source) -> None:
    url = changing_source.database_url
    counting = CountingSource(url)
    state = TrendsState(source=counting, analysis="energy_scale", variables=["peak_mev"])
    series = state.series
    state.refresh()  # nothing new
    assert state.update is None and state.series is series
    assert counting.reads == [None, LAST - 1]  # the last run drawn is read again

    add_run(url, LAST + 1)
    save_result(url, LAST + 1)
    add_run(url, LAST + 2)
    save_result(url, LAST + 2, peak_mev=3.0)
    state.refresh()
    update = state.update
    assert counting.reads[-1] == LAST - 1 and state.series is series  # not replaced
    (appended,) = update.appended.values()
    assert list(appended["run_id"]) == [LAST + 1, LAST + 2]
    assert list(appended["rank"]) == [N_RUNS, N_RUNS + 1]
    assert list(appended["outside"]) == [0, 1] and not update.replaced
    assert runs(state)[-3:] == [LAST, LAST + 1, LAST + 2] and state.n_runs == N_RUNS + 2

    save_result(url, LAST + 2, peak_mev=2.2)  # a live analysis replaces the last result
    state.refresh()
    assert not state.update.appended
    (replaced,) = state.update.replaced.values()
    assert list(replaced.index) == [N_RUNS + 1] and list(replaced["value"]) == [2.2]
    assert state.series["peak_mev"]["value"].iat[-1] == 2.2
    assert len(state.series["peak_mev"]) == N_RUNS + 2

    update = state.update
    state.refresh()
    assert state.update is update  # nothing new: nothing published

    save_result(url, 105, peak_mev=2.0)  # an older result again (a backfill): all is read again
    reads = len(counting.reads)
    state.refresh()
    assert counting.reads[reads:] == [None] and state.series is not series
    assert state.update is None
    assert state.series["peak_mev"].set_index("run_id")["value"][105] == 2.0


def test_a_trend_without_points_fills_in_on_refresh(changing_source: Source) -> None:
    url = changing_source.database_url
    state = TrendsState(
        source=changing_source, analysis="energy_scale", variables=["peak_mev"], min_run=LAST + 1
    )
    assert state.series["peak_mev"].empty
    add_run(url, LAST + 1)
    save_result(url, LAST + 1)
    state.refresh()
    assert runs(state) == [LAST + 1] and state.message == ""


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"version": "two"}, "'two' is not a version: versions are whole numbers."),
        ({"x": "sideways"}, "There is no x axis 'sideways'"),
        ({"min_run": "abc"}, "min_run: 'abc' is not a run number"),
        ({"days": "-1"}, "'-1' is not a number of days"),
        ({"days": "many"}, "'many' is not a number of days"),
        ({"tags": "no good"}, "tags: run tag 'no good' is not a word"),
    ],
)
def test_bad_url_parameters_give_one_sentence_each(arguments: dict, problem: str) -> None:
    settings, problems = parse_trend_arguments(arguments)
    (sentence,) = problems
    assert sentence.startswith(problem) and sentence.endswith(".")
    assert settings["x_axis"] == "run" and settings["days"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"analysis": "nothing"}, "There is no analysis 'nothing'; the analyses are"),
        ({"analysis": "energy_scale", "version": "9"}, "energy_scale has no version 9"),
        (
            {"analysis": "energy_scale", "version": "1", "variables": "peak_mev,bogus"},
            "energy_scale v1 has no variable 'bogus'; its variables are peak_mev, resolution.",
        ),
        ({"min_run": "110", "max_run": "105"}, "No run can be shown: the first run (110)"),
        ({"analysis": "energy_scale", "version": "2"}, "energy_scale v2 has no results yet"),
    ],
)
def test_a_choice_that_shows_nothing_says_why(
    source: Source, arguments: dict, message: str
) -> None:
    state = TrendsState(source=source)
    assert state.apply_arguments(arguments) == []
    assert state.message.startswith(message)
    if "bogus" in arguments.get("variables", ""):
        assert runs(state) == list(range(FIRST_RUN, LAST + 1))  # the known one is shown


def test_url_arguments_round_trip(source: Source) -> None:
    arguments = {
        "analysis": "energy_scale",
        "version": "1",
        "variables": "peak_mev,resolution",
        "x": "time",
        "run_types": "physics",
        "min_run": "101",
        "max_run": "118",
        "days": "30",
        "tags": "messy",
        "exclude_tags": "bad",
    }
    state = TrendsState(source=source)
    assert state.apply_arguments(arguments) == []
    assert state.arguments() == arguments
    assert runs(state) == [104, 106]


def test_source_reads_a_runs_analyses_tags_and_backfills(source: Source) -> None:
    analyses = {(a.analysis, a.version): a for a in source.run_analyses(LAST)}
    assert set(analyses) == {("energy_scale", 1), ("energy_scale", 2), ("legacy", 3)}
    done = analyses["energy_scale", 1]
    assert done.status == "stored" and done.figures == ("peak",)
    assert done.lineage["calibration_version"] == 3
    peak = next(v for v in done.values if v.variable == "peak_mev")
    assert peak.meaning == "fitted peak position" and peak.in_band and peak.unit == "MeV"
    failed = analyses["energy_scale", 2]
    assert failed.status == "failed" and failed.result_id is None
    assert failed.error == "the fit of the peak did not converge."
    assert "RuntimeError" in (failed.traceback or "")
    assert analyses["legacy", 3].status == "waiting"
    assert source.analysis_figure(done.result_id, "peak").startswith(b"\x89PNG")
    assert source.run_summary(106).tags == ("good", "messy")
    assert source.all_tags() == ["bad", "good", "messy"]
    assert source.backfills().empty


def test_backfill_progress(changing_source: Source) -> None:
    url = changing_source.database_url
    with transaction(url) as s:
        backfill = queries.add_backfill(
            s, analysis="energy_scale", version=2, since_run=100, until_run=103, n_runs=4
        )
        states = ["DONE", "DONE", "FAILED", "TODO"]
        for k, state in enumerate(states):
            job = queries.add_job(
                s,
                kind="analysis",
                run_id=100 + k,
                analysis="energy_scale",
                analysis_version=2,
                backfill_id=backfill.id,
            )
            job.state = state
    (row,) = changing_source.backfills().to_dict("records")
    assert (row["analysis"], row["version"], row["jobs"]) == ("energy_scale", 2, 4)
    assert (row["finished"], row["done"], row["failed"], row["progress"]) == (3, 2, 1, 75.0)
    assert row["runs"] == "100–103 (4 runs)"


# --- the views, without a server --------------------------------------------------------------


def test_the_view_draws_one_plot_per_variable_and_streams_new_points(
    changing_source: Source,
) -> None:
    from app.trendsview import TrendsView

    url = changing_source.database_url
    opened: list[int] = []
    state = TrendsState(source=changing_source, analysis="energy_scale", variables=["peak_mev"])
    view = TrendsView(state=state, on_open=opened.append)
    view.__panel__()
    (plot,) = view.plots
    assert list(plot.source.data["run_id"]) == list(range(FIRST_RUN, LAST + 1))
    assert (plot.band.bottom, plot.band.top, plot.band.visible) == (2.1, 2.3, True)
    assert plot.figure.yaxis[0].axis_label == "peak_mev [MeV]"
    assert ("run", "@run_id") in plot.hover.tooltips

    state.x_axis = "rank"
    assert plot.points.glyph.x == "rank" and plot.errors.glyph.x0 == "rank"
    state.x_axis = "time"
    assert plot.points.glyph.x == "time"

    # A new result: streamed into the same source of the same figure, nothing sent again.
    document = Document()
    document.add_root(view.__panel__().get_root(document))
    events: list[str] = []  # the changes sent for the plot (the summary line changes too)
    document.on_change(
        lambda event: (
            events.append(type(event).__name__)
            if event.model in (plot.source, plot.figure)
            else None
        )
    )
    add_run(url, LAST + 1)
    save_result(url, LAST + 1)
    state.refresh()
    assert view.plots[0] is plot and events == ["ColumnsStreamedEvent"]
    assert list(plot.source.data["run_id"])[-2:] == [LAST, LAST + 1]
    save_result(url, LAST + 1, peak_mev=2.6)  # the last result replaced
    state.refresh()
    assert events[1:] == ["ColumnsPatchedEvent"] and plot.source.data["outside"][-1] == 1

    # A click on a point opens its run.
    plot.source.selected.indices = [3]
    assert opened == [FIRST_RUN + 3] and plot.source.selected.indices == []

    state.variables = ["peak_mev", "resolution"]  # two plots, their x axes linked
    first, second = view.plots
    assert first.figure.x_range is second.figure.x_range
    assert second.figure.yaxis[0].axis_label == "resolution [%]" and not second.band.visible


def test_the_app_opens_a_trend_from_its_url_parameters(source: Source) -> None:
    from app.main import DQMApp

    app = DQMApp(
        source=source,
        refresh_s=0,
        page="trends",
        trend={"analysis": "energy_scale", "variables": "peak_mev", "x": "rank", "days": "x"},
    )
    assert type(app.view).__name__ == "TrendsView"
    assert app.trends_state.x_axis == "rank" and app.trends_state.version == 1
    assert app._message.visible and "'x' is not a number of days" in app._message.object
    assert app.trend == {
        "analysis": "energy_scale",
        "version": "1",
        "variables": "peak_mev",
        "x": "rank",
    }
    app.__panel__()
    app.trends_state.run_types = ["calibration"]
    assert app.trend["run_types"] == "calibration"  # the choice goes to the URL
    app.refresh()
    app._trends_view.on_open(105)
    assert (app.page, app.run) == ("run", "105")


def test_the_run_page_shows_its_analyses_and_tags(source: Source) -> None:
    from app.main import DQMApp
    from app.state import RUN_TABS
    from app.views import tag_chips, variables_table

    app = DQMApp(source=source, refresh_s=0, page="run", run=str(LAST), tab="analyses")
    assert not app._message.visible and app._run_page._tabs.active == RUN_TABS.index("analyses")
    app.__panel__()
    analyses = app.run_state.analyses
    assert [(a.analysis, a.version, a.status) for a in analyses] == [
        ("energy_scale", 1, "stored"),
        ("energy_scale", 2, "failed"),
        ("legacy", 3, "waiting"),
    ]
    app._run_page._analyses()  # the tab builds (figures read)
    table = variables_table(analyses[0])
    assert "| peak_mev | 2.219 ± 0.01 MeV | fitted peak position | 2.1 to 2.3 |" in table
    assert "run-tag" in tag_chips(("good", "messy")) and "No tags" in tag_chips(())


def test_tags_are_changed_by_logged_in_users_only(changing_source: Source) -> None:
    from app.state import RunState

    guest = RunState(source=changing_source, run_id=104, user="guest")
    guest.set_tags("messy, ramp_up")
    assert guest.notice.startswith("Not saved: changing a run's tags needs a login")
    expert = RunState(source=changing_source, run_id=104, user="ana", role=Role.SHIFTER)
    expert.set_tags("ramp_up bad")
    assert expert.notice == "Tags saved: bad, ramp_up."
    assert expert.summary.tags == ("bad", "ramp_up")
    expert.set_tags("Not A Tag!")
    assert expert.notice.startswith("Not saved: run tag")
    change = changing_source.recent_changes().iloc[0]
    assert change["action"] == "run_tags" and change["user"] == "ana"


def test_the_source_reads_trends_and_analyses_on_every_backend(database: str) -> None:
    """The queries behind the trends and the Analyses tab (columns, tokens, variables of an
    undeclared version, a run's analyses) on SQLite, MariaDB and PostgreSQL."""
    fill(database)
    source = Source(database)
    points = source.trend("energy_scale", 1, ["peak_mev", "resolution"], include_tags=["messy"])
    assert list(points["run_id"]) == [104, 104, 106, 106]
    assert list(points["variable"]) == ["peak_mev", "resolution"] * 2
    assert points["start_time"].dtype.kind == "M" and points["error"].isna().sum() == 2
    tail = source.trend("energy_scale", 1, ["peak_mev"], run_types=["physics"], after_run=117)
    assert list(tail["run_id"]) == [118, 119]
    token = source.trend_token("energy_scale", 1, before_run=LAST)
    assert token[0] == N_RUNS - 1
    save_result(database, LAST, peak_mev=2.0)  # the last run: nothing before it changed
    assert source.trend_token("energy_scale", 1, before_run=LAST) == token
    save_result(database, 110, peak_mev=2.0)
    assert source.trend_token("energy_scale", 1, before_run=LAST) != token
    legacy = next(c for c in source.analysis_catalog() if c.analysis == "legacy")
    assert [(v.name, v.unit) for v in legacy.variables] == [("dark_rate", "kHz")]
    statuses = {(a.analysis, a.version): a.status for a in source.run_analyses(LAST)}
    assert statuses == {
        ("energy_scale", 1): "stored",
        ("energy_scale", 2): "failed",
        ("legacy", 3): "waiting",
    }
    before = source.run_token(104)
    shifter = Actor("ana", Role.SHIFTER)
    assert source.change_run_tags(104, shifter, add=["ramp_up"]) == ["messy", "ramp_up"]
    assert source.run_token(104) != before
