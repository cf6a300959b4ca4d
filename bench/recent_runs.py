"""Benchmark of the recent-runs query that the dashboard and `dqm runs` make.

Fills a fresh database with N runs spread over years (default 20,000; SQLite in a temporary
directory unless --database names another, which must be empty), then times the three search modes
of the run list. Prints the figures; the last line is one JSON object.

    .venv/bin/python bench/recent_runs.py [--runs 20000] [--database URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _benchpath import fill_runs

from dqm.db import migrate, queries
from dqm.db.session import transaction


def timed_ms(url: str, repeat: int, **kwargs: Any) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        with transaction(url) as session:
            runs = queries.recent_runs(session, **kwargs)
            assert runs
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="number of runs to create")
    parser.add_argument("--database", help="an empty database URL (default: SQLite in a temp dir)")
    parser.add_argument("--repeat", type=int, default=20, help="repetitions per query (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        migrate.upgrade(url, "head")
        t0 = time.perf_counter()
        fill_runs(url, args.runs)
        fill_s = time.perf_counter() - t0
        now = dt.datetime(2024, 1, 1) + dt.timedelta(hours=2 * args.runs)
        figures = {
            "n_runs": args.runs,
            "fill_runs_per_s": round(args.runs / fill_s),
            "recent_runs_ms": round(timed_ms(url, args.repeat, limit=50), 2),
            "recent_completed_ms": round(timed_ms(url, args.repeat, limit=50, completed=True), 2),
            "recent_days_ms": round(timed_ms(url, args.repeat, days=7, now=now), 2),
            "status_filter_ms": round(timed_ms(url, args.repeat, limit=50, status="Failed"), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if args.database:
            migrate.downgrade(url, "base")
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
