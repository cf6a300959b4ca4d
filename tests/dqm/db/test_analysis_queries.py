"""The analyses' queries on every backend: tags and their changes, one result per (analysis,
version, run), trends with their filters, backfills after live jobs, deleting a run."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import text

from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError, NotFoundError
from dqm.states import JobState

START = dt.datetime(2026, 11, 1, 8, 0)


def add_runs(session, run_ids, run_type="physics"):
    for index, run_id in enumerate(run_ids):
        queries.add_run(
            session,
            run_id=run_id,
            run_type=run_type,
            start_time=START + dt.timedelta(hours=run_id - 100),
            end_time=START + dt.timedelta(hours=run_id - 100, minutes=50),
            status="All Completed",
        )


def save(session, run_id, value, *, version=1, analysis="scale"):
    return queries.save_analysis_result(
        session,
        analysis=analysis,
        version=version,
        run_id=run_id,
        values=[
            queries.StoredValue("ratio", value, 0.01, "1"),
            queries.StoredValue("width", 2 * value, None, "ns"),
        ],
        data={"n": run_id},
        lineage={"code_version": "test"},
        figures={"plot": b"\x89PNG..."},
    )


def test_tags_are_words_and_every_change_is_recorded(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102])
        assert queries.change_run_tags(s, run_id=101, add=["Messy", "bad"], user="ana") == [
            "bad",
            "messy",
        ]
        # nothing changes, nothing is recorded
        assert queries.change_run_tags(s, run_id=101, add=["bad"], remove=["gone"], user="ana")
        assert queries.change_run_tags(s, run_id=101, remove=["bad"], user="bo") == ["messy"]
        with pytest.raises(InvalidValueError, match="is not a word"):
            queries.change_run_tags(s, run_id=101, add=["two words"], user="ana")
        with pytest.raises(InvalidValueError, match="log in"):
            queries.change_run_tags(s, run_id=101, add=["x"], user="guest")
        with pytest.raises(NotFoundError):
            queries.change_run_tags(s, run_id=999, add=["x"], user="ana")
    with transaction(database) as s:
        changes = [c for c in queries.changes(s) if c.action == "run_tags"]
        assert [(c.user, c.detail) for c in reversed(changes)] == [
            ("ana", {"added": ["bad", "messy"], "removed": []}),
            ("bo", {"added": [], "removed": ["bad"]}),
        ]
        assert queries.tags_of_runs(s, run_ids=[101, 102]) == {101: ["messy"]}
        assert queries.all_tags(s) == ["messy"]


def test_one_result_per_analysis_version_and_run(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102])
        save(s, 101, 1.0)
        save(s, 101, 1.5)  # a live analysis again: replaces
        save(s, 101, 3.0, version=2)  # another version stands beside it
        save(s, 102, 1.1)
    with transaction(database) as s:
        assert queries.result_counts(s) == {("scale", 1): 2, ("scale", 2): 1}
        result = queries.analysis_result(s, analysis="scale", version=1, run_id=101)
        assert [(v.variable, v.value, v.error, v.unit) for v in result.values] == [
            ("ratio", 1.5, 0.01, "1"),
            ("width", 3.0, None, "ns"),
        ]
        assert queries.figure_names(s, result_ids=[result.id]) == {result.id: ["plot"]}
        rows = s.execute(
            text("SELECT COUNT(*) FROM analysis_values WHERE run_id = 101 AND version = 1")
        ).scalar()
        assert rows == 2  # the values replaced are gone with their result
        view = s.execute(
            text(
                "SELECT run, time, analysis, version, variable, value, error, unit FROM "
                "analysis_results_view WHERE run = 101 ORDER BY version, variable"
            )
        ).all()
        assert [tuple(r)[2:] for r in view] == [
            ("scale", 1, "ratio", 1.5, 0.01, "1"),
            ("scale", 1, "width", 3.0, None, "ns"),
            ("scale", 2, "ratio", 3.0, 0.01, "1"),
            ("scale", 2, "width", 6.0, None, "ns"),
        ]
        assert str(view[0].time).startswith("2026-11-01 09:00:00")  # SQLite gives it as text
        assert queries.runs_with_result(s, analysis="scale", version=1) == {101, 102}
        queries.delete_run(s, run_id=101)
    with transaction(database) as s:
        assert queries.result_counts(s) == {("scale", 1): 1}
        assert s.execute(text("SELECT COUNT(*) FROM analysis_values")).scalar() == 2
        assert s.execute(text("SELECT COUNT(*) FROM analysis_figures")).scalar() == 1


def test_trends_filter_by_type_range_time_and_tags(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102, 103, 104])
        add_runs(s, [105], run_type="laser")
        for run_id in range(101, 106):
            save(s, run_id, run_id / 100)
        queries.change_run_tags(s, run_id=102, add=["messy"], user="ana")
        queries.change_run_tags(s, run_id=103, add=["calm"], user="ana")

    def runs(**filters):
        with transaction(database) as s:
            columns = queries.analysis_trend_columns(
                s, analysis="scale", version=1, variables=["ratio"], **filters
            )
        return columns["run_id"].tolist()

    assert runs() == [101, 102, 103, 104, 105]
    assert runs(run_types=["physics"]) == [101, 102, 103, 104]
    assert runs(min_run=102, max_run=104) == [102, 103, 104]
    assert runs(since=START + dt.timedelta(hours=3)) == [103, 104, 105]
    assert runs(exclude_tags=["messy"]) == [101, 103, 104, 105]
    assert runs(include_tags=["calm"]) == [103]
    assert runs(after_run=103) == [104, 105]
    with transaction(database) as s:
        both = queries.analysis_trend_columns(
            s, analysis="scale", version=1, variables=["ratio", "width"], max_run=101
        )
        assert both["variable"].tolist() == ["ratio", "width"]
        assert both["value"].tolist() == [1.01, 2.02] and both["unit"].tolist() == ["1", "ns"]
        assert both["error"][0] == 0.01 and np.isnan(both["error"][1])  # no error: NaN
        assert both["start_time"][0] == np.datetime64(START + dt.timedelta(hours=1), "us")


def test_backfill_jobs_wait_behind_every_other_job(database: str) -> None:
    now = dt.datetime(2026, 12, 1)
    with transaction(database) as s:
        add_runs(s, [101, 102, 103])
        backfill = queries.add_backfill(
            s, analysis="scale", version=2, since_run=None, until_run=None, n_runs=2
        )
        queries.add_analysis_jobs(
            s, run_ids=[101, 102], analysis="scale", version=2, backfill_id=backfill.id
        )
        live = queries.add_job(s, kind="merge_run", run_id=103)
        other = queries.add_job(s, kind="analysis", run_id=103, analysis="x", analysis_version=1)
    with transaction(database) as s:
        due = queries.due_jobs(s, now=now, limit=3)
        assert [j.id for j in due[:2]] == [live.id, other.id]
        assert due[2].backfill_id == backfill.id
        (progress,) = queries.backfill_progress(s)
        assert (progress.finished, progress.total) == (0, 2)
        assert progress.jobs_by_state == {JobState.TODO: 2}
        with pytest.raises(NotFoundError, match="backfill 999"):
            queries.backfill_progress(s, backfill_id=999)


@pytest.mark.parametrize("record", ["record_analysis_declaration", "record_check_declaration"])
def test_two_servers_recording_one_declaration_at_once_both_succeed(
    database: str, record: str
) -> None:
    """Job servers starting together record the same declarations: the one whose insert meets
    the other's refreshes that row instead of failing."""
    import threading

    if database.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: its inserts never meet")
    inserted, go_on = threading.Event(), threading.Event()

    def other_server() -> None:
        with transaction(database) as s:
            getattr(queries, record)(
                s, name="shared", version=1, declaration={"by": "other"}, origin="other"
            )
            inserted.set()
            go_on.wait(10)  # commits while this one's insert waits on the key

    thread = threading.Thread(target=other_server)
    thread.start()
    assert inserted.wait(10)
    with transaction(database) as s:
        timer = threading.Timer(0.5, go_on.set)
        timer.start()
        row = getattr(queries, record)(
            s, name="shared", version=1, declaration={"by": "this"}, origin="this"
        )
        assert row.declaration == {"by": "this"}
    thread.join(10)
    with transaction(database) as s:
        model = type(row)
        (stored,) = s.query(model).filter_by(name="shared").all()
        assert stored.declaration == {"by": "this"} and stored.origin == "this"
