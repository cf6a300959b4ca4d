"""The dqm command line, on every backend: init-db, run add/set/show/delete, runs, config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dqm.cli import cli


@pytest.fixture
def dqm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``dqm ARGS`` in-process against the database given by DQM_DATABASE_URL."""
    monkeypatch.chdir(tmp_path)  # no stray dqm.toml
    monkeypatch.delenv("DQM_CONFIG", raising=False)

    def run(*args: str, url: str, stdin: str | None = None):
        runner = CliRunner()
        return runner.invoke(
            cli, list(args), env={"DQM_DATABASE_URL": url}, input=stdin, catch_exceptions=False
        )

    return run


def test_init_db_add_set_runs_on_each_backend(empty_database: str, dqm) -> None:
    result = dqm("init-db", url=empty_database)
    assert result.exit_code == 0, result.output
    assert "migrated from empty to revision" in result.output
    assert "up to date" in dqm("init-db", url=empty_database).output

    result = dqm(
        "run",
        "add",
        "10004",
        "--type",
        "physics",
        "--start",
        "2026-11-20T08:00:00",
        url=empty_database,
    )
    assert result.exit_code == 0, result.output
    assert "added run 10004 (physics, Data Taking)" in result.output
    dqm(
        "run",
        "add",
        "10005",
        "--type",
        "laser",
        "--start",
        "2026-11-20T09:00",
        "--end",
        "2026-11-20T09:30",
        "--status",
        "all-completed",
        "--events",
        "80000",
        "--files",
        "1",
        url=empty_database,
    )
    result = dqm(
        "run",
        "set",
        "10004",
        "--end",
        "2026-11-20T10:00",
        "--status",
        "partly_completed",
        "--comment",
        "HV trip in sector 3",
        url=empty_database,
    )
    assert result.exit_code == 0, result.output

    result = dqm("runs", "--json", url=empty_database)
    runs = json.loads(result.output)
    assert [(r["run_id"], r["status"]) for r in runs] == [
        (10004, "Partly Completed"),
        (10005, "All Completed"),
    ]
    assert runs[0]["comment"] == "HV trip in sector 3"

    table = dqm("runs", url=empty_database).output.splitlines()
    assert table[0].split()[:3] == ["run", "type", "status"]
    assert table[1].startswith("10004  physics  Partly Completed")
    assert (
        dqm("runs", "--status", "All Completed", "--json", url=empty_database).output.count(
            "run_id"
        )
        == 1
    )
    assert (
        json.loads(dqm("runs", "--type", "laser", "--json", url=empty_database).output)[0]["run_id"]
        == 10005
    )

    shown = json.loads(dqm("run", "show", "10005", "--json", url=empty_database).output)
    assert shown["n_events"] == 80000 and shown["files"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "set", "42", "--comment", "x"], "error: run 42 does not exist."),
        (["run", "set", "1", "--status", "done"], "error: 'done' is not a run status; use one of"),
        (["run", "set", "1", "--end", "31/12/2026"], "error: end time '31/12/2026' is not a date"),
        (["run", "add", "1", "--type", "physics"], "error: run 1 exists already"),
        (["run", "set", "1"], "error: nothing to change"),
        (["runs", "--status", "busy"], "error: 'busy' is not a run status"),
        (["run", "show", "7"], "error: run 7 does not exist."),
        (["run", "delete", "7", "--yes"], "error: run 7 does not exist."),
        (["run", "add", "x", "--type", "physics"], "'x' is not a valid integer"),
        (["runs", "--days", "-1"], "-1.0 is not in the range x>=0"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    sqlite_database: str, dqm, args: list[str], message: str
) -> None:
    dqm("run", "add", "1", "--type", "physics", "--start", "2026-11-01", url=sqlite_database)
    result = dqm(*args, url=sqlite_database)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_delete_asks_for_confirmation(sqlite_database: str, dqm) -> None:
    dqm("run", "add", "3", "--type", "physics", url=sqlite_database)
    result = dqm("run", "delete", "3", url=sqlite_database, stdin="n\n")
    assert result.exit_code == 1 and "not deleted" in result.output
    result = dqm("run", "delete", "3", url=sqlite_database, stdin="")  # no answer at all
    assert result.exit_code == 1 and "add --yes" in result.output
    assert "3" in dqm("runs", url=sqlite_database).output
    result = dqm("run", "delete", "3", url=sqlite_database, stdin="y\n")
    assert result.exit_code == 0 and "deleted run 3" in result.output
    assert "no runs match" in dqm("runs", url=sqlite_database).output


def test_uninitialised_or_unreachable_database(tmp_path: Path, dqm) -> None:
    result = dqm("runs", url=f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert result.exit_code == 1
    assert "has no DQM schema yet; run 'dqm init-db' first." in result.output
    result = dqm("runs", url="postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: database postgresql+psycopg://nobody:***@127.0.0.1:1/none is not reachable"
    )
    assert len(result.output.strip().splitlines()) == 1


def test_config_masks_and_names_sources(dqm) -> None:
    result = dqm("config", "--json", url="postgresql+psycopg://dqm:s3cret@db.example.org/dqm")
    shown = json.loads(result.output)
    assert shown["database_url"] == "postgresql+psycopg://dqm:***@db.example.org/dqm"
    assert shown["sources"]["database_url"] == "DQM_DATABASE_URL"
    assert "s3cret" not in result.output
    result = dqm("config", url="sybase://x")
    assert result.exit_code == 2 and result.output.startswith(
        "error: DQM_DATABASE_URL: database backend 'sybase'"
    )


def test_installed_console_script(database: str, tmp_path: Path) -> None:
    """The `dqm` executable itself, as an operator runs it, on each backend."""
    exe = shutil.which("dqm", path=str(Path(sys.executable).parent)) or shutil.which("dqm")
    assert exe, "the dqm console script is not installed"
    env = {**os.environ, "DQM_DATABASE_URL": database}
    env.pop("DQM_CONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args],
            check=False,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("init-db").returncode == 0
    assert run("run", "add", "20001", "--type", "physics").returncode == 0
    listed = run("runs", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["run_id"] == 20001
    bad = run("run", "set", "20001", "--status", "nonsense")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == ""
    assert run("--help").returncode == 0


def test_each_core_command_is_where_the_lazy_table_says_and_a_command_imports_only_its_module() -> (
    None
):
    import importlib

    from dqm.cli.base import CORE_COMMANDS

    defined: dict[str, str] = {}
    for module in sorted(set(CORE_COMMANDS.values())):
        before = set(cli.commands)
        importlib.import_module(f"dqm.cli.{module}")
        # a module imported earlier (by another test) has its commands in already
        mine = {name for name in cli.commands if CORE_COMMANDS.get(name) == module}
        defined.update({name: module for name in (set(cli.commands) - before) | mine})
    assert defined == CORE_COMMANDS
    # `dqm goodruns` starts without the imports of the checks and the analyses (SciPy)
    code = (
        "import sys; from dqm.cli import cli; import click; "
        "cli.get_command(click.Context(cli), 'goodruns'); "
        "print(sorted(m for m in ('scipy', 'dqm.checks.kinds', 'dqm.cli.checks', 'dqm.cli.analyses')"
        " if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
