"""Alarm latency: from the file_ready of a faulty file to its alarm in the database, and to the
alarm's notice received by a webhook.

Starts ``dqm jobserver`` (two workers, SQLite, embedded broker, the webhook pointing at a local
HTTP receiver), processes a clean reference run, then ``--runs`` runs of one faulty file each
(``dead:n=40``, ``--events`` events): the run's run_start, then its file_ready (the time is
taken), then run_end. For each, the time to the alarm of ``pmt_classes`` opened (its
``opened_at``) and to the webhook's POST about it arriving. Figures (the last line is one JSON
object): ``p50_alarm_s``, ``p95_alarm_s``, ``p50_webhook_s``, ``p95_webhook_s``. Goal: p95 ≤ 30 s.

    .venv/bin/python bench/alarm_latency.py [--runs 10] [--events 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from _benchpath import print_figures

from daqsim import SimulationConfig, SimulationResult, parse_fault, simulate_run
from dqm import broker, messages
from dqm.alarms import alarm_key
from dqm.config import Settings, load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.states import RunStatus
from dqm.times import utcnow

FIRST_RUN = 60_000


class Receiver(ThreadingHTTPServer):
    """Records when each alarm's first notice arrives (naive UTC)."""

    def __init__(self) -> None:
        self.arrived: dict[int, dt.datetime] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                alarm = json.loads(body).get("alarm_id")
                if alarm is not None:
                    outer.arrived.setdefault(int(alarm), utcnow())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def announce(
    settings: Settings, result: SimulationResult, faulty_at: dict[int, dt.datetime]
) -> None:
    broker.publish(
        settings,
        messages.make(
            "run_start",
            run_id=result.run_id,
            run_type="physics",
            start_time=result.start_time,
            detector="CD",
        ),
    )
    for f in result.files:
        faulty_at[result.run_id] = utcnow()
        broker.publish(
            settings,
            messages.make(
                "file_ready",
                run_id=result.run_id,
                seq=f.seq,
                uri=str(f.path),
                size=f.size,
                checksum=f.checksum,
                n_events=f.n_events,
            ),
        )
    broker.publish(
        settings,
        messages.make(
            "run_end",
            run_id=result.run_id,
            end_time=result.end_time,
            n_files=len(result.files),
            n_events=result.n_events,
        ),
    )


def wait(condition: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen in {timeout_s:.0f} s")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="dqm-alarm-latency-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dqm.sqlite'}"
        migrate.upgrade(url)
        env = {
            "DQM_DATA_DIR": tmp,
            "DQM_DATABASE_URL": url,
            "DQM_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        }
        settings = load_settings(env=env)
        runs = []
        for k in range(args.runs + 1):
            runs.append(
                simulate_run(
                    SimulationConfig(
                        run_id=FIRST_RUN + k,
                        n_files=1,
                        events_per_file=args.events,
                        n_jobs=2,
                        faults=(parse_fault("dead:n=40"),) if k else (),
                    ),
                    settings,
                    progress=False,
                    overwrite=True,
                )
            )
        log_path = Path(tmp) / "jobserver.log"
        log = log_path.open("w")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "dqm"), "jobserver", "--max-jobs", "2"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        faulty_at: dict[int, dt.datetime] = {}
        opened: dict[int, dt.datetime] = {}
        alarm_of: dict[int, int] = {}
        try:
            wait(lambda: "listening on" in log_path.read_text(), "the job server's start", 60)

            def completed(run_id: int) -> bool:
                with transaction(url) as session:
                    run = queries.find_run(session, run_id=run_id)  # None until its run_start
                    return (
                        run is not None
                        and run.status is RunStatus.ALL_COMPLETED
                        and run.quality is not None
                    )

            def heard(run_id: int) -> bool:
                return alarm_of[run_id] in receiver.arrived

            announce(settings, runs[0], {})
            wait(lambda: completed(FIRST_RUN), "the reference run")
            for result in runs[1:]:
                announce(settings, result, faulty_at)

                def alarmed(run_id: int = result.run_id) -> bool:
                    with transaction(url) as session:
                        for alarm in queries.list_alarms(session, run_id=run_id):
                            if alarm.key == alarm_key("pmt_classes", run_id):
                                opened[run_id], alarm_of[run_id] = alarm.opened_at, alarm.id
                                return True
                    return False

                wait(alarmed, f"the alarm of run {result.run_id}")
                run_id = result.run_id
                wait(functools.partial(heard, run_id), "the webhook")
                wait(functools.partial(completed, run_id), f"run {run_id} complete")
                print(
                    f"run {result.run_id}: alarm after "
                    f"{(opened[result.run_id] - faulty_at[result.run_id]).total_seconds():.2f} s",
                    file=sys.stderr,
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
            dispose_engines()
            receiver.shutdown()
    to_alarm = [(opened[r] - faulty_at[r]).total_seconds() for r in opened]
    to_hook = [(receiver.arrived[alarm_of[r]] - faulty_at[r]).total_seconds() for r in opened]
    print_figures(
        {
            "runs": len(to_alarm),
            "p50_alarm_s": round(float(np.percentile(to_alarm, 50)), 2),
            "p95_alarm_s": round(float(np.percentile(to_alarm, 95)), 2),
            "p50_webhook_s": round(float(np.percentile(to_hook, 50)), 2),
            "p95_webhook_s": round(float(np.percentile(to_hook, 95)), 2),
        }
    )


if __name__ == "__main__":
    main()
