"""Publishing on the broker: the embedded filesystem transport and RabbitMQ, for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kombu
import pytest
from click.testing import CliRunner
from services import fresh_queue

from dqm import broker, messages
from dqm.cli import cli
from dqm.config import Settings, load_settings


def drain(settings: Settings) -> list[messages.Message]:
    received = []
    with broker.connection(settings) as connection:
        queue = broker.transfer_queue(settings)(connection.default_channel)
        queue.declare()
        while (message := queue.get(no_ack=False)) is not None:
            assert message.content_type == "application/json"
            received.append(messages.parse(message.body))
            message.ack()
    return received


def test_filesystem_broker_round_trip(tmp_path: Path) -> None:
    settings = load_settings(env={"DQM_DATA_DIR": str(tmp_path)})
    sent = [
        messages.make("run_end", run_id=7, end_time="2026-11-20T09:00:00", n_files=1, n_events=5)
    ]
    broker.publish(settings, *sent)
    assert drain(settings) == sent
    assert (tmp_path / "broker" / "queues").is_dir()


@pytest.mark.services
def test_simulate_notify_through_rabbitmq(tmp_path: Path) -> None:
    with fresh_queue() as (url, queue):
        env = {"DQM_DATA_DIR": str(tmp_path), "DQM_BROKER_URL": url, "DQM_BROKER_QUEUE": queue}
        result = CliRunner().invoke(
            cli,
            ["simulate", "42", "--files", "2", "--events", "50", "--jobs", "1", "--notify", "-q"],
            env=env,
        )
        assert result.exit_code == 0, result.output
        assert "messages published" in result.output
        received = drain(load_settings(env=env))
    assert [m.type for m in received] == ["run_start", "file_ready", "file_ready", "run_end"]
    assert [m.fields.get("seq") for m in received] == [None, 0, 1, None]
    assert all(m.run_id == 42 for m in received)


def test_unreachable_broker_is_one_clear_error(tmp_path: Path) -> None:
    settings = load_settings(
        env={"DQM_DATA_DIR": str(tmp_path), "DQM_BROKER_URL": "amqp://guest:secret@127.0.0.1:1//"}
    )
    message = messages.make(
        "run_end", run_id=7, end_time="2026-11-20T09:00:00", n_files=1, n_events=5
    )
    with pytest.raises(broker.BrokerError) as info:
        broker.publish(settings, message, max_retries=1)
    assert str(info.value).startswith(
        "broker amqp://guest:***@127.0.0.1:1// did not take the message"
    )
    assert "secret" not in str(info.value)
    assert isinstance(info.value.__cause__, OSError | kombu.exceptions.KombuError)


def test_the_embedded_broker_refuses_a_second_job_server_in_one_sentence(tmp_path: Path) -> None:
    """One consumer at a time: a job server started beside one that consumes is refused, with a
    sentence that points to RabbitMQ; once the first has stopped, the second may start."""
    settings = load_settings(
        env={"DQM_DATA_DIR": str(tmp_path), "DQM_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"}
    )
    env = {
        **os.environ,
        "DQM_DATA_DIR": str(tmp_path),
        "DQM_DATABASE_URL": settings.database_url,
    }
    dqm = str(Path(sys.executable).parent / "dqm")
    assert (
        subprocess.run([dqm, "init-db"], env=env, capture_output=True, check=False).returncode == 0
    )
    with broker.connection(settings) as connection:
        queue = broker.transfer_queue(settings)(connection.default_channel)
        queue.declare()
        assert queue.get(no_ack=False) is None  # this process now consumes
        second = subprocess.run(
            [dqm, "jobserver", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode != 0
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert lines and "Traceback" not in second.stderr, second.stderr
        assert "already serves a job server" in lines[-1] and "RabbitMQ" in lines[-1]
        assert f"process {os.getpid()}" in lines[-1]
    # the first consumer has gone: the next one may start (and stops, having nothing to do)
    again = subprocess.run(
        [dqm, "jobserver", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
