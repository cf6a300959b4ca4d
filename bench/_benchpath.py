"""Imported first by the benchmarks that use the pipeline package: Python puts a script's folder
first on sys.path, where ``bench/pipeline.py`` would hide the package; this takes the folder out.
It also holds what several benchmarks share (it is importable before the folder goes)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Self

import psutil

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


class PeakMemory:
    """Samples the summed RSS of this process and its children in a background thread."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def print_figures(figures: dict[str, object]) -> None:
    """One figure a line, then all of them as one JSON object on the last line."""
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:>{width}}: {value}")
    print(json.dumps(figures))


def fill_runs(url: str, n_runs: int) -> None:
    """``n_runs`` runs from run 1000 on, two hours apart, of every type and final status (the
    last three still taking data), in one transaction."""
    import datetime as dt

    from dqm.db import queries
    from dqm.db.session import transaction
    from dqm.states import RunStatus

    start = dt.datetime(2024, 1, 1)
    statuses = list(RunStatus)
    rows = []
    for i in range(n_runs):
        begin = start + dt.timedelta(hours=2 * i)
        running = i >= n_runs - 3
        rows.append(
            {
                "run_id": 1000 + i,
                "detector": "CD",
                "run_type": ("physics", "laser", "calibration", "random")[i % 4],
                "start_time": begin,
                "end_time": None if running else begin + dt.timedelta(hours=1, minutes=50),
                "status": RunStatus.DATA_TAKING if running else statuses[2 + i % 3],
                "n_events": 6_600_000,
                "n_files": 80,
                "sampling_fraction": 1.0,
                "created_at": begin,
                "updated_at": begin,
            }
        )
    with transaction(url) as session:
        queries.add_runs(session, rows=rows)
