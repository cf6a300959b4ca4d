"""Benchmark of the processing of raw files against merely reading them.

Simulates a physics run of ~2 MeV events (about 4,000 hits each), then times, on the same files:
reading every hit branch with uproot (the baseline), and the processing stage the job server runs
(calibration, Calib histograms, per-PMT statistics, centroid reconstruction and Rec histograms),
with 1 process and with 2 processes (one file each). Prints the figures; the last line is one JSON object.

    .venv/bin/python bench/processing.py [--files 2] [--events 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import joblib
import uproot

from dqm import rawformat
from dqm.config import load_settings
from dqm.simulator import SimulationConfig, simulate_run
from pipeline.stages import calib


def read_only(path: str) -> int:
    with uproot.open(path) as file:
        tree = file[rawformat.EVENTS_TREE]
        n = 0
        for arrays in tree.iterate(
            list(rawformat.HIT_BRANCHES) + [rawformat.HIT_COUNTER], step_size=2_000, library="ak"
        ):
            n += len(arrays)
    return n


def process(path: str, seq: int) -> int:
    result = calib.process_file(
        {"path": path, "run_id": 1, "seq": seq, "calibration": calib.CalibConstants.nominal()}
    )
    return result.n_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--events", type=int, default=10_000, help="events per file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env={"DQM_DATA_DIR": tmp})
        result = simulate_run(
            SimulationConfig(
                run_id=1, n_files=args.files, events_per_file=args.events, energy_mev=2.0, n_jobs=2
            ),
            settings,
            progress=False,
        )
        paths = [str(f.path) for f in result.files]
        n_events = result.n_events
        process(paths[0], 0)  # warm-up: compiled kernels, page cache

        t0 = time.perf_counter()
        assert sum(read_only(p) for p in paths) == n_events
        read_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        assert sum(process(p, i) for i, p in enumerate(paths)) == n_events
        process_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        counts = joblib.Parallel(n_jobs=2)(
            joblib.delayed(process)(p, i) for i, p in enumerate(paths)
        )
        assert sum(counts) == n_events
        parallel_s = time.perf_counter() - t0
        size_mb = sum(Path(p).stat().st_size for p in paths) / 1e6
    figures = {
        "n_events": n_events,
        "file_mb": round(size_mb, 1),
        "read_events_per_s": round(n_events / read_s),
        "events_per_s": round(n_events / process_s),
        "events_per_s_2_processes": round(n_events / parallel_s),
        "ratio_pipeline_to_read": round(process_s / read_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
