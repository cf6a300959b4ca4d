"""Latency of the job server: from the publication of a file_ready message to the file's job DONE
and to the run's histograms merged with it, for the embedded broker and for RabbitMQ.

Simulates a run of 20 files, starts `dqm jobserver` (2 workers), publishes run_start, then one
file_ready every --interval seconds (as files close at the detector), then run_end, and reads the
job times from the database. Prints the figures; the last line is one JSON object (``p50_done_s``
and ``p95_done_s`` are the embedded broker's; every figure also per broker).

    .venv/bin/python bench/latency.py [--files 20] [--events 500] [--interval 0.5] [--brokers embedded,rabbitmq]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from daqsim import SimulationConfig, simulate_run
from dqm import broker, messages
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.states import RunStatus
from dqm.times import utcnow

RABBITMQ = os.environ.get("DQM_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def measure(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    url = f"sqlite:///{tmp / f'{kind}.sqlite'}"
    migrate.upgrade(url)
    queue = f"dqm.bench.{uuid.uuid4().hex[:8]}"
    env = {
        "DQM_DATA_DIR": str(tmp / kind),
        "DQM_DATABASE_URL": url,
        "DQM_BROKER_URL": "filesystem://" if kind == "embedded" else RABBITMQ,
        "DQM_BROKER_QUEUE": queue,
    }
    settings = load_settings(env=env)
    run_id = 1000
    config = SimulationConfig(
        run_id=run_id, n_files=args.files, events_per_file=args.events, n_jobs=2
    )
    result = simulate_run(config, settings, progress=False, overwrite=True)
    log = (tmp / f"{kind}.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dqm"), "jobserver", "--max-jobs", "2"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    published: dict[int, dt.datetime] = {}
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in (tmp / f"{kind}.log").read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the job server did not start; see {tmp / f'{kind}.log'}")
            time.sleep(0.1)
        broker.publish(
            settings,
            messages.make(
                "run_start",
                run_id=run_id,
                run_type="physics",
                start_time=result.start_time,
                detector="CD",
            ),
        )
        for f in result.files:
            time.sleep(args.interval)
            published[f.seq] = utcnow()
            broker.publish(
                settings,
                messages.make(
                    "file_ready",
                    run_id=run_id,
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
                run_id=run_id,
                end_time=result.end_time,
                n_files=len(result.files),
                n_events=result.n_events,
            ),
        )
        deadline = time.monotonic() + 300
        while True:
            with transaction(url) as session:
                if queries.get_run(session, run_id=run_id).status is RunStatus.ALL_COMPLETED:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the run did not complete in 300 s")
            time.sleep(0.2)
        with transaction(url) as session:
            seq_of = {f.id: f.seq for f in queries.files_of_run(session, run_id=run_id)}
            jobs = queries.list_jobs(session, run_id=run_id, limit=None)
            done: dict[int, dt.datetime] = {}
            merges: list[tuple[dt.datetime, dt.datetime]] = []
            # The file and merge jobs of a completed run were submitted and have finished.
            for job in jobs:
                if job.kind == "process_file":
                    assert job.file_id is not None and job.finished_at is not None
                    done[seq_of[job.file_id]] = job.finished_at
                elif job.kind == "merge_run":
                    assert job.submitted_at is not None and job.finished_at is not None
                    merges.append((job.submitted_at, job.finished_at))
            merges.sort()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
        if kind == "rabbitmq":
            with broker.connection(settings) as connection:
                broker.transfer_queue(settings)(connection.default_channel).delete()
        dispose_engines()
    to_done = [(done[seq] - sent).total_seconds() for seq, sent in published.items()]
    to_merged = []
    for seq, sent in published.items():
        merged_at = next(finished for submitted, finished in merges if submitted >= done[seq])
        to_merged.append((merged_at - sent).total_seconds())
    return {
        f"{kind}_p50_done_s": round(float(np.percentile(to_done, 50)), 3),
        f"{kind}_p95_done_s": round(float(np.percentile(to_done, 95)), 3),
        f"{kind}_p50_merged_s": round(float(np.percentile(to_merged, 50)), 3),
        f"{kind}_p95_merged_s": round(float(np.percentile(to_merged, 95)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--events", type=int, default=500, help="events per file")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between file_ready messages"
    )
    parser.add_argument("--brokers", default="embedded,rabbitmq")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.brokers.split(","):
            figures |= measure(kind, args, Path(tmp))
    first = args.brokers.split(",")[0]
    figures = {
        "p50_done_s": figures[f"{first}_p50_done_s"],
        "p95_done_s": figures[f"{first}_p95_done_s"],
        "p50_merged_s": figures[f"{first}_p50_merged_s"],
        "p95_merged_s": figures[f"{first}_p95_merged_s"],
        **figures,
    }
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
