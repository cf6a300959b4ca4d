"""One PMT over a year of runs: the PMT page's search and its changes since the previous run.

    .venv/bin/python bench/pmt_history.py [--runs 1500] [--database-url URL]

Fills a database (a new SQLite file by default) with ``--runs`` physics runs, each with its full
per-PMT statistics (8 arrays of 17,612 float64, as the job server stores them: 1.1 MB a run) and
its PMT status (one byte a PMT), then times, each 20 times for PMTs chosen at random:

- ``search_ms``: ``queries.pmt_history`` over every run and ``queries.first_dead_run`` (the
  search of the PMT page and of ``dqm pmt history``), which read the PMT's block of each run
  (4 kB), not the run's arrays;
- ``changes_ms``: ``queries.pmt_changes`` of the latest run (two statuses read and compared).

Figures (the last line is one JSON object): ``p50``/``p95`` of both, in ms, the runs, and the
database's size. Goal: the search answers in well under a second on a year of runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _benchpath import print_figures

from dqm import detector, pmtstatus
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.pmtclass import DEFAULT_CUTS
from dqm.pmtstats import PMT_ARRAYS

FIRST_RUN = 1000
N_EVENTS = 100_000
LIVETIME_NS = N_EVENTS * detector.PRETRIGGER_WINDOW_NS


def fill(url: str, n_runs: int) -> None:
    rng = np.random.default_rng(3)
    n = detector.N_PMTS
    dead = np.zeros(n, dtype=bool)
    start = dt.datetime(2026, 1, 1)
    for chunk in range(0, n_runs, 50):
        with transaction(url) as s:
            for run_id in range(FIRST_RUN + chunk, FIRST_RUN + min(chunk + 50, n_runs)):
                dead[rng.integers(0, n, 2)] = True  # PMTs die now and then
                dead[rng.integers(0, n, 1)] = False
                queries.add_run(
                    s,
                    run_id=run_id,
                    run_type="physics",
                    start_time=start + dt.timedelta(hours=6 * (run_id - FIRST_RUN)),
                    status="All Completed",
                )
                fired = rng.binomial(N_EVENTS, 0.1, n).astype(float)
                fired[dead] = 0
                sums = {name: fired * (1 + k / 10) for k, name in enumerate(PMT_ARRAYS)}
                queries.save_pmt_stats(
                    s,
                    run_id=run_id,
                    file_id=None,
                    n_events=N_EVENTS,
                    livetime_ns=LIVETIME_NS,
                    arrays=sums,
                )
                queries.save_pmt_status(
                    s,
                    run_id=run_id,
                    run_type="physics",
                    codes=pmtstatus.status_from_sums(sums, N_EVENTS, LIVETIME_NS, DEFAULT_CUTS),
                    cuts=DEFAULT_CUTS,
                    n_events=N_EVENTS,
                    values=pmtstatus.history_values(sums, N_EVENTS, LIVETIME_NS),
                )
        print(f"  {min(chunk + 50, n_runs)} / {n_runs} runs stored", flush=True)


def timed(function: Callable[[], None], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'history.sqlite'}"
        migrate.upgrade(url)
        t0 = time.perf_counter()
        fill(url, args.runs)
        fill_s = time.perf_counter() - t0
        rng = np.random.default_rng(5)
        pmts = iter(rng.integers(0, detector.N_PMTS, 1000))
        last = FIRST_RUN + args.runs - 1

        def search() -> None:
            pmt = int(next(pmts))
            with transaction(url) as s:
                rows = queries.pmt_history(s, pmt_id=pmt, limit=None)
                queries.first_dead_run(s, pmt_id=pmt)
            assert len(rows) == args.runs

        def changes() -> None:
            with transaction(url) as s:
                assert queries.pmt_changes(s, run_id=last) is not None

        search()  # the first query warms the caches of the database
        search_ms = timed(search, 20)
        changes_ms = timed(changes, 20)
        size = os.path.getsize(Path(tmp) / "history.sqlite") if args.database_url is None else None
        dispose_engines()
    print_figures(
        {
            "runs": args.runs,
            "fill_s": round(fill_s, 1),
            "database_mb": round(size / 1e6) if size else None,
            "search_p50_ms": round(float(np.percentile(search_ms, 50)), 1),
            "search_p95_ms": round(float(np.percentile(search_ms, 95)), 1),
            "changes_p50_ms": round(float(np.percentile(changes_ms, 50)), 1),
            "changes_p95_ms": round(float(np.percentile(changes_ms, 95)), 1),
        }
    )


if __name__ == "__main__":
    main()
