"""The command line of the job server and of its records: dqm simulate --notify, dqm jobserver,
dqm notify, dqm jobs, dqm messages, dqm retry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from services import foreign_root_dir, fresh_database, fresh_queue

from dqm.cli import cli

DQM = str(Path(sys.executable).parent / "dqm")


def run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DQM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.parametrize(
    ("backend", "broker"), [("postgresql", "rabbitmq"), ("mariadb", "embedded")]
)
def test_simulate_notify_then_jobserver(tmp_path: Path, backend: str, broker: str) -> None:
    with fresh_database(backend) as database_url, fresh_queue() as (amqp_url, queue):
        env = {**os.environ, "DQM_DATA_DIR": str(tmp_path), "DQM_DATABASE_URL": database_url}
        env.pop("DQM_CONFIG", None)
        if broker == "rabbitmq":
            env |= {"DQM_BROKER_URL": amqp_url, "DQM_BROKER_QUEUE": queue}
        assert run(["init-db"], env).returncode == 0
        for args in (
            ["simulate", "51", "--files", "2", "--events", "50"],
            ["simulate", "52", "--type", "laser", "--events", "30"],
        ):
            result = run([*args, "--notify", "--jobs", "1", "-q"], env)
            assert result.returncode == 0, result.stderr
        result = run(["jobserver", "--once"], env)
        assert result.returncode == 0, result.stderr
        assert "message run_start run 51 accepted" in result.stderr
        assert "merge_run run 52" in result.stderr and "-> DONE" in result.stderr
        runs = json.loads(run(["runs", "--json"], env).stdout)
        assert {r["run_id"]: r["status"] for r in runs} == {
            51: "All Completed",
            52: "All Completed",
        }
        jobs = json.loads(run(["jobs", "--json", "--run", "51"], env).stdout)
        assert sorted(j["kind"] for j in jobs).count("process_file") == 2
        assert {j["state"] for j in jobs} == {"DONE"}


def test_notify_and_messages(tmp_path: Path, sqlite_database: str) -> None:
    env = {"DQM_DATA_DIR": str(tmp_path / "data"), "DQM_DATABASE_URL": sqlite_database}
    runner = CliRunner()
    raw = tmp_path / "data" / "raw" / "61"
    raw.mkdir(parents=True)
    shutil.copy(foreign_root_dir() / "uproot-simple.root", raw / "61.0.root")
    assert (
        runner.invoke(
            cli,
            ["notify", "run-start", "61", "--type", "physics", "--start", "2026-11-01T08:00"],
            env=env,
        ).exit_code
        == 0
    )
    # Size and checksum come from the file; a file that is not a DQM raw file cannot be announced
    # without saying how many events it has.
    refused = runner.invoke(
        cli, ["notify", "file-ready", "61", "0", str(raw / "61.0.root")], env=env
    )
    assert refused.exit_code == 2 and "is not a DQM raw file" in refused.output
    announced = runner.invoke(
        cli, ["notify", "file-ready", "61", "0", str(raw / "61.0.root"), "--events", "3"], env=env
    )
    assert announced.exit_code == 0, announced.output
    assert (
        runner.invoke(
            cli,
            [
                "notify",
                "file-ready",
                "61",
                "1",
                "/etc/hosts",
                "--size",
                "1",
                "--checksum",
                "00000001",
                "--events",
                "1",
            ],
            env=env,
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            cli, ["notify", "run-end", "61", "--files", "2", "--events", "4"], env=env
        ).exit_code
        == 0
    )
    bad = runner.invoke(cli, ["notify", "run-end", "61", "--files", "2"], env=env)
    assert bad.exit_code == 2 and "Missing option '--events'" in bad.output

    from helpers import make_settings, run_server

    run_server(make_settings(tmp_path, sqlite_database), availability_timeout_s=0)

    rejected = json.loads(runner.invoke(cli, ["messages", "--rejected", "--json"], env=env).output)
    assert len(rejected) == 1 and "outside the allowed raw roots" in rejected[0]["error"]
    listing = runner.invoke(cli, ["messages"], env=env).output
    assert listing.count("accepted") == 3 and "rejected" in listing
    jobs = runner.invoke(cli, ["jobs", "--run", "61"], env=env).output
    assert "FAILED: 1" in jobs and "is not a DQM raw file" in jobs
    assert "Failed" in runner.invoke(cli, ["runs"], env=env).output
    assert runner.invoke(cli, ["jobs", "--state", "weird"], env=env).exit_code == 2
    assert runner.invoke(cli, ["retry"], env=env).exit_code == 2
    assert runner.invoke(cli, ["retry", "--run", "999"], env=env).exit_code == 2


def test_jobserver_bad_options(tmp_path: Path, sqlite_database: str) -> None:
    env = {"DQM_DATA_DIR": str(tmp_path), "DQM_DATABASE_URL": sqlite_database}
    runner = CliRunner()
    result = runner.invoke(cli, ["jobserver", "--executor", "dask"], env=env)
    assert result.exit_code == 2 and "needs --scheduler" in result.output
    result = runner.invoke(
        cli, ["jobserver", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"], env=env
    )
    assert result.exit_code == 2 and "is not reachable" in result.output
    result = runner.invoke(cli, ["jobserver", "--max-jobs", "0"], env=env)
    assert result.exit_code == 2 and "--max-jobs" in result.output
    result = runner.invoke(
        cli,
        ["jobserver"],
        env={**env, "DQM_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}"},
    )
    assert result.exit_code == 1 and "run 'dqm init-db' first" in result.output
