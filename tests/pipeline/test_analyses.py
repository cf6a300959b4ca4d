"""Analysis jobs through the job server: created when a run's data are complete (or after each
merge, for live ones), one result per (analysis, version, run) with its lineage, versions side by
side, backfills, and broken analyses that fail alone — on every backend and both brokers."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_settings, run_server, session, simulate
from sqlalchemy import text

from dqm.analyses.declarations import DeclarationError, load_catalog
from dqm.analyses.records import plan_backfill, queue_backfill
from dqm.db import queries
from dqm.db.session import transaction
from dqm.states import JobState, RunStatus

GOOD = """
[analyses.mean_hits]
version = {version}
function = "sample_analyses:mean_hits"
requires = ["calib_histograms", "pmt_stats"]
when = "{when}"
[analyses.mean_hits.parameters]
scale = {scale}
[analyses.mean_hits.variables]
mean_nhits = {{ unit = "1", meaning = "mean hits per event", expected = [0, 30000] }}
events = {{ unit = "1", meaning = "events used" }}
"""

BROKEN = """
[analyses.raises]
version = 1
function = "sample_analyses:raises"
[analyses.raises.variables]
value = { unit = "1", meaning = "never returned" }

[analyses.wrong_type]
version = 1
function = "sample_analyses:wrong_type"
[analyses.wrong_type.variables]
value = { unit = "1", meaning = "never returned" }

[analyses.not_a_number]
version = 1
function = "sample_analyses:not_a_number"
[analyses.not_a_number.variables]
value = { unit = "1", meaning = "NaN" }

[analyses.too_slow]
version = 1
function = "sample_analyses:too_slow"
timeout = 0.5
[analyses.too_slow.variables]
value = { unit = "1", meaning = "too late" }
"""


def declare(tmp_path: Path, *texts: str) -> Path:
    path = tmp_path / "operator_analyses.toml"
    path.write_text("\n".join(texts))
    return path


def with_analyses(settings, path: Path):
    from dataclasses import replace

    return replace(settings, analyses_file=path)


def test_analyses_run_on_complete_runs_and_broken_ones_fail_alone(
    tmp_path: Path, database: str, broker_url: tuple[str, str]
) -> None:
    path = declare(tmp_path, GOOD.format(version=1, when="completion", scale=1.0), BROKEN)
    settings = with_analyses(make_settings(tmp_path, database, *broker_url), path)
    simulate(settings, 701, n_files=2, events=60)
    run_server(settings)

    with session(settings) as s:
        run = queries.get_run(s, run_id=701)
        # The broken analyses failed alone: the run's data are complete, the run is too.
        assert run.status is RunStatus.ALL_COMPLETED
        jobs = {j.analysis: j for j in queries.analysis_jobs(s, run_id=701)}
        assert set(jobs) >= {"mean_hits", "raises", "wrong_type", "not_a_number", "too_slow"}
        builtin = [j for name, j in jobs.items() if name in load_catalog(None, entry_points=())]
        assert builtin and {j.state for j in builtin} == {JobState.DONE}, [
            (j.analysis, j.error) for j in builtin if j.state is not JobState.DONE
        ]
        assert jobs["mean_hits"].state is JobState.DONE
        reasons = {
            "raises": "raised on run 701: ZeroDivisionError: the analysis divided by zero",
            "wrong_type": "returned a dict, not a dqm.analyses.Result",
            "not_a_number": "returned nan for variable 'value'",
            "too_slow": "ran past its timeout of 0.5 s",
        }
        for name, reason in reasons.items():
            job = jobs[name]
            assert job.state is JobState.FAILED, (name, job.error)
            assert reason in job.error, (name, job.error)
            assert job.attempts == 1  # an analysis's own failure is not retried
            assert job.traceback and "Traceback" in job.traceback, name
        assert "sample_analyses.py" in jobs["raises"].traceback

        (result,) = queries.analysis_results(s, run_id=701, analysis="mean_hits")
        assert result.version == 1
        values = {v.variable: v for v in result.values}
        assert values["events"].value == 120
        assert 0 < values["mean_nhits"].value and values["mean_nhits"].error > 0
        assert result.data["run_type"] == "physics" and len(result.data["counts"]) == 5
        lineage = result.lineage
        assert lineage["analysis_version"] == 1 and lineage["function"].endswith(":mean_hits")
        assert lineage["events_used"] == 120 and lineage["n_files"] == 2
        assert lineage["calibration_version"] == 0 and lineage["rec_method"] == "tlh"
        assert lineage["sampling_fraction"] == 1.0 and lineage["data_complete"] is True
        assert queries.figure_names(s, result_ids=[result.id]) == {result.id: ["pixel"]}
        assert queries.analysis_figure(s, result_id=result.id, name="pixel").startswith(b"\x89PNG")

        # The view for other tools: one row per variable.
        rows = s.execute(
            text(
                "SELECT run, time, analysis, version, variable, value, error, unit "
                "FROM analysis_results_view WHERE analysis = 'mean_hits' ORDER BY variable"
            )
        ).all()
        assert [(r.run, r.analysis, r.version, r.variable) for r in rows] == [
            (701, "mean_hits", 1, "events"),
            (701, "mean_hits", 1, "mean_nhits"),
        ]
        assert rows[0].value == 120 and rows[1].error == pytest.approx(values["mean_nhits"].error)


def test_live_analyses_keep_one_result_and_versions_stand_side_by_side(
    tmp_path: Path, sqlite_database: str
) -> None:
    path = declare(tmp_path, GOOD.format(version=1, when="live", scale=1.0))
    settings = with_analyses(make_settings(tmp_path, sqlite_database), path)
    simulate(settings, 702, n_files=3, events=40)
    simulate(settings, 703, n_files=1, events=40, run_type="laser")
    run_server(settings)
    with session(settings) as s:
        for run_id in (702, 703):
            assert queries.get_run(s, run_id=run_id).status is RunStatus.ALL_COMPLETED
            (result,) = queries.analysis_results(s, run_id=run_id, analysis="mean_hits")
            assert result.lineage["data_complete"] is True  # the last one is on complete data
            assert {j.state for j in queries.analysis_jobs(s, run_id=run_id)} == {JobState.DONE}
        v1 = {
            r.run_id: {v.variable: v.value for v in r.values}
            for r in queries.analysis_results(s, analysis="mean_hits")
        }

    # Version 2 (scaled by 2): new runs get it, and a backfill gives it to the old ones; the
    # results of version 1 stay as they were.
    declare(tmp_path, GOOD.format(version=2, when="completion", scale=2.0))
    catalog = load_catalog(path)
    with transaction(settings.database_url) as s:
        plan = plan_backfill(s, declaration=catalog.get("mean_hits"), since_run=702)
        assert plan.runs == (702, 703)
        backfill = queue_backfill(
            s, plan=plan, since_run=702, until_run=None, code_version="test", created_by="tester"
        )
    with session(settings) as s:  # a backfill does not reopen finished runs
        assert queries.get_run(s, run_id=702).status is RunStatus.ALL_COMPLETED
    run_server(settings)
    with session(settings) as s:
        (progress,) = queries.backfill_progress(s, backfill_id=backfill.id)
        assert (progress.finished, progress.total) == (2, 2)
        results = queries.analysis_results(s, analysis="mean_hits")
        assert sorted((r.run_id, r.version) for r in results) == [
            (702, 1),
            (702, 2),
            (703, 1),
            (703, 2),
        ]
        for r in results:
            if r.version == 2:
                mean = next(v for v in r.values if v.variable == "mean_nhits")
                prior = next(
                    v
                    for v in queries.analysis_result(
                        s, analysis="mean_hits", version=1, run_id=r.run_id
                    ).values
                    if v.variable == "mean_nhits"
                )
                assert mean.value == pytest.approx(2 * prior.value)
                assert prior.value == v1[r.run_id]["mean_nhits"]  # version 1 untouched
        # Nothing more to backfill.
        assert plan_backfill(s, declaration=catalog.get("mean_hits")).runs == ()

    # A version that goes backwards is refused at start, with one sentence.
    declare(tmp_path, GOOD.format(version=1, when="completion", scale=1.0))
    with pytest.raises(DeclarationError, match=r"\[analyses.mean_hits\]: version 1 is below"):
        run_server(settings)


def test_the_analyses_commands(tmp_path: Path, sqlite_database: str) -> None:
    """dqm run tag/untag, dqm analyses list/run/results/backfill, and bad declarations refused by
    dqm and by the job server, each with one line."""
    import json
    import subprocess
    import sys

    from click.testing import CliRunner

    from dqm.cli import cli

    path = declare(tmp_path, GOOD.format(version=1, when="completion", scale=1.0))
    settings = with_analyses(make_settings(tmp_path, sqlite_database), path)
    env = {
        "DQM_DATABASE_URL": sqlite_database,
        "DQM_DATA_DIR": str(settings.data_dir),
        "DQM_ANALYSES_FILE": str(path),
    }

    def dqm(*args: str):
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        return result

    simulate(settings, 704, n_files=1, events=40)
    simulate(settings, 705, n_files=1, events=40, run_type="laser")
    run_server(settings)

    out = dqm("run", "tag", "705", "messy", "Ramp_Up")
    assert out.exit_code == 0 and "run 705 tags: messy ramp_up." in out.output
    assert "run 705 tags: messy." in dqm("run", "untag", "705", "ramp_up", "absent").output
    assert dqm("run", "tag", "705", "bad tag!").exit_code == 2
    assert "tags               messy" in dqm("run", "show", "705").output
    with session(settings) as s:
        (change,) = [
            c for c in queries.changes(s) if c.action == "run_tags" and c.detail["removed"]
        ]
        assert change.target == "705" and change.user.endswith("@cli")

    listed = json.loads(dqm("analyses", "list", "--json").output)
    (row,) = [r for r in listed if r["name"] == "mean_hits"]
    assert (row["version"], row["runs"]) == (1, 2)

    out = dqm("analyses", "run", "mean_hits", "704")
    assert out.exit_code == 0, out.output
    assert "mean_hits v1 on run 704" in out.output and "mean hits per event" in out.output
    tried = json.loads(dqm("analyses", "run", "mean_hits", "704", "--json").output)
    with session(settings) as s:
        stored = queries.analysis_result(s, analysis="mean_hits", version=1, run_id=704)
        assert tried["variables"]["mean_nhits"]["value"] == next(
            v.value for v in stored.values if v.variable == "mean_nhits"
        )
    out = dqm("analyses", "run", "nope", "704")
    assert out.exit_code == 2 and "no analysis 'nope' is declared" in out.output

    rows = json.loads(
        dqm(
            "analyses",
            "results",
            "--run",
            "704",
            "--analysis",
            "mean_hits",
            "--variable",
            "events",
            "--json",
        ).output
    )
    assert [(r["run"], r["variable"], r["value"]) for r in rows] == [(704, "events", 40.0)]
    assert "no results match." in dqm("analyses", "results", "--analysis", "other").output

    # Backfill: nothing to do for the declared version; a new version queues both runs.
    assert "nothing to backfill" in dqm("analyses", "backfill", "mean_hits").output
    out = dqm("analyses", "backfill", "mean_hits", "--version", "3")
    assert out.exit_code == 2 and "version 3 is not declared" in out.output
    declare(tmp_path, GOOD.format(version=2, when="completion", scale=1.0))
    out = dqm("analyses", "backfill", "mean_hits", "--since", "705", "-q")
    assert out.exit_code == 0 and "1 run(s) queued for mean_hits v2" in out.output
    run_server(settings)
    assert (
        json.loads(
            dqm("analyses", "results", "--analysis", "mean_hits", "--version", "2", "--json").output
        )[0]["run"]
        == 705
    )

    # A bad declaration file: one line from dqm, and the job server does not start.
    path.write_text("[analyses.mean_hits]\nversion = 2\n")
    out = dqm("analyses", "list")
    assert out.exit_code == 2
    assert out.output.strip().count("\n") == 0 and str(path) in out.output
    server = subprocess.run(
        [str(Path(sys.executable).parent / "dqm"), "jobserver", "--once"],
        env={**__import__("os").environ, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert server.returncode == 2, server.stderr
    assert server.stderr.strip().splitlines() == [
        (
            f"error: {path}: [analyses.mean_hits]: function must be 'package.module:function', "
            "not None."
        )
    ]


def test_run_start_tags_select_the_analyses(tmp_path: Path, sqlite_database: str) -> None:
    """Tags from run_start are recorded (with the change) and decide which analyses run."""
    from dqm import broker, messages

    selective = GOOD.format(version=1, when="completion", scale=1.0).replace(
        'when = "completion"', 'when = "completion"\nexclude_tags = ["messy"]'
    )
    path = declare(tmp_path, selective)
    settings = with_analyses(make_settings(tmp_path, sqlite_database), path)
    sent: list[messages.Message] = []
    simulate(settings, 706, n_files=1, events=40, publish=lambda *m: sent.extend(m))
    simulate(settings, 707, n_files=1, events=40)
    # run 706 announced as messy by data transfer
    assert sent[0].type == "run_start"
    tagged = messages.make(
        "run_start",
        **{k: v for k, v in sent[0].fields.items() if v is not None},
        tags=["messy", "Ramp_Up"],
    )
    broker.publish(settings, tagged, *sent[1:])
    run_server(settings)
    with session(settings) as s:
        assert queries.run_tags(s, run_id=706) == ["messy", "ramp_up"]
        (change,) = [c for c in queries.changes(s) if c.action == "run_tags"]
        assert (change.user, change.target) == ("run_start", "706")
        assert change.detail == {"added": ["messy", "ramp_up"], "removed": []}
        assert [r.run_id for r in queries.analysis_results(s, analysis="mean_hits")] == [707]
        assert queries.get_run(s, run_id=706).status is RunStatus.ALL_COMPLETED
    untagged = messages.parse(
        messages.make("run_start", **{**sent[0].fields, "run_id": 799}).to_json()
    )
    assert "tags" not in untagged.fields  # tags are optional
    with pytest.raises(messages.MessageError, match="field 'tags': run tag 'no way!'"):
        messages.make("run_start", **{**sent[0].fields, "run_id": 799, "tags": ["no way!"]})
