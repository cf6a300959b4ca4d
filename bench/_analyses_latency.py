"""How long a run waits for its analyses: from the moment its data are complete (its last merge
DONE) to every analysis job of it DONE, for demo-size runs that arrive one after the other at a
job server with two workers (``bench/analyses.py`` prints it with the other figures).

Each run is simulated and announced on the embedded broker while ``dqm jobserver --max-jobs 2``
runs; the next run comes once the previous one is All Completed. The times are read from the
jobs' records in the database.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from daqsim import SimulationConfig, parse_fault, simulate_run
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.states import JobState, RunStatus

#: The runs, as in ``make demo``: (run type, events, options).
RUNS: list[tuple[str, int, dict[str, Any]]] = [
    ("laser", 2000, {}),
    ("calibration", 2000, {"source": "Cs137"}),
    *[("physics", 1500, {}) for _ in range(8)],
    ("physics", 1500, {"faults": (parse_fault("ly_drop:fraction=0.03"),)}),
    ("laser", 2000, {"faults": (parse_fault("gain_drift:fraction=-0.1"),)}),
]


def _wait_complete(url: str, run_id: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with transaction(url) as session:
            run = queries.find_run(session, run_id=run_id)
            if run is not None and run.status in (RunStatus.ALL_COMPLETED, RunStatus.FAILED):
                return
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not complete in {timeout_s} s")


def measure_latency() -> dict[str, float]:
    """``p95_all_done_s`` and friends: data complete → all analyses DONE, over the runs."""
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        url = f"sqlite:///{tmp / 'dqm.sqlite'}"
        migrate.upgrade(url)
        env = {"DQM_DATA_DIR": str(tmp / "data"), "DQM_DATABASE_URL": url}
        settings = load_settings(env=env)
        log = (tmp / "jobserver.log").open("w")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "dqm"), "jobserver", "--max-jobs", "2"],
            env={**clean, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            start = dt.datetime(2026, 12, 1, 8, 0)
            for index, (run_type, events, options) in enumerate(RUNS):
                run_id = 50_001 + index
                config = SimulationConfig(
                    run_id=run_id,
                    run_type=run_type,
                    events_per_file=events,
                    n_jobs=2,
                    start_time=start + dt.timedelta(hours=index),
                    **options,
                )
                simulate_run(config, settings, notify=True, progress=False, overwrite=True)
                _wait_complete(url, run_id)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        latencies, analysis_seconds, failed = [], [], 0
        with transaction(url) as session:
            for index in range(len(RUNS)):
                run_id = 50_001 + index
                jobs = queries.list_jobs(session, run_id=run_id, limit=None)
                merged = max(j.finished_at for j in jobs if j.kind == "merge_run" and j.finished_at)
                analyses = [j for j in jobs if j.kind == "analysis"]
                failed += sum(1 for j in analyses if j.state is not JobState.DONE)
                done = max(j.finished_at for j in analyses if j.finished_at)
                latencies.append((done - merged).total_seconds())
                analysis_seconds += [
                    (j.finished_at - j.submitted_at).total_seconds()
                    for j in analyses
                    if j.finished_at and j.submitted_at
                ]
        dispose_engines()
    values = np.array(latencies)
    return {
        "runs": float(len(RUNS)),
        "p50_all_done_s": float(np.percentile(values, 50)),
        "p95_all_done_s": float(np.percentile(values, 95)),
        "max_all_done_s": float(values.max()),
        "p95_analysis_job_s": float(np.percentile(analysis_seconds, 95)),
        "analyses_not_done": float(failed),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure_latency()))
