"""Benchmark of the DAQ simulator: ~2 MeV physics events (about 4,000 hits each, dark noise
included) written as raw ROOT files by 2 worker processes.

Prints events/s and the peak memory of the whole process tree (main process plus workers, sampled
every 50 ms); the last line is one JSON object. The goal: >= 1,000 events/s (a 1 kHz detector) with
peak RSS <= 1 GB, whatever the file size.

    .venv/bin/python bench/simulate.py [--files 2] [--events 12000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from _benchpath import PeakMemory

from daqsim import SimulationConfig, simulate_run
from dqm.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2, help="files in the run")
    parser.add_argument("--events", type=int, default=12_000, help="events per file")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--energy", type=float, default=2.0, help="visible energy, MeV")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env={"DQM_DATA_DIR": tmp})
        # Warm-up: loads (or compiles) the simulation kernel outside the timed run.
        simulate_run(
            SimulationConfig(run_id=1, events_per_file=20, n_jobs=1), settings, progress=False
        )
        config = SimulationConfig(
            run_id=2,
            n_files=args.files,
            events_per_file=args.events,
            energy_mev=args.energy,
            n_jobs=args.jobs,
        )
        with PeakMemory(interval_s=0.05) as memory:
            start = time.perf_counter()
            result = simulate_run(config, settings, progress=True)
            elapsed = time.perf_counter() - start
        written = sum(f.size for f in result.files)
        n_events = result.n_events
        hits = 0.0
        import uproot

        with uproot.open(result.files[0].path) as f:
            hits = float(f["events"]["nhits"].array(library="np").mean())
    figures = {
        "n_events": n_events,
        "n_jobs": args.jobs,
        "hits_per_event": round(hits, 1),
        "events_per_s": round(n_events / elapsed, 1),
        "written_mb_per_s": round(written / elapsed / 1e6, 1),
        "kb_per_event": round(written / n_events / 1e3, 1),
        "peak_rss_mb": round(memory.peak_bytes / 2**20, 1),
    }
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
