"""Benchmark of the laser calibration at full statistics, against the simulator's truth.

Simulates a laser run (1 photo-electron per PMT a flash on average, 15 dead PMTs), derives the gain
and cable offset of every PMT as ``dqm calibrate`` does, and reports the fraction of live PMTs whose
gain is within 2% and offset within 0.5 ns of the truth, with the time the fit took. The per-PMT
errors fall as 1/√flashes: the test suite checks 3,000 flashes; "every live PMT within 2%" needs
about 45,000.

    .venv/bin/python bench/calibration.py [--flashes 50000] [--files 10]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _benchpath  # noqa: F401  (first: bench/ leaves sys.path)
import joblib
import numpy as np
from _benchpath import print_figures

from daqsim import SimulationConfig, parse_fault, simulate_run
from dqm.config import load_settings
from pipeline.stages import laser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flashes", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dqm-bench-calibration-") as tmp:
        settings = load_settings(env={"DQM_DATA_DIR": tmp})
        _log(f"simulating a laser run of {args.flashes:,} flashes ...")
        t0 = time.perf_counter()
        result = simulate_run(
            SimulationConfig(
                run_id=1,
                run_type="laser",
                n_files=args.files,
                events_per_file=args.flashes // args.files,
                laser_pe=1.0,
                faults=(parse_fault("dead:n=15"),),
                n_jobs=2,
            ),
            settings,
            progress=True,
        )
        simulate_s = time.perf_counter() - t0
        with np.load(Path(tmp) / "truth" / "1" / "1.0.truth.npz") as z:
            truth = {k: z[k] for k in ("gain", "offset_ns", "pde_rel")}
        _log("fitting gains and offsets ...")
        t0 = time.perf_counter()
        parts = joblib.Parallel(n_jobs=2)(
            joblib.delayed(laser.laser_sums)({"path": str(f.path), "run_id": 1, "seq": f.seq})
            for f in result.files
        )
        fitted = laser.fit(parts)
        fit_s = time.perf_counter() - t0
    live = fitted.status == laser.STATUS_GOOD
    gain_error = np.abs(fitted.gain[live] / truth["gain"][live] - 1)
    true_offsets = truth["offset_ns"][live] - truth["offset_ns"][live].mean()
    offset_error = np.abs(fitted.offset_ns[live] - true_offsets)
    figures = {
        "flashes": fitted.n_events,
        "live_pmts": int(live.sum()),
        "dead_reported": len(fitted.dead),
        "gain_within_2pct_fraction": round(float(np.mean(gain_error <= 0.02)), 5),
        "gain_error_max_pct": round(float(gain_error.max() * 100), 2),
        "gain_error_rms_pct": round(float(np.sqrt(np.mean(gain_error**2)) * 100), 3),
        "offset_within_0p5ns_fraction": round(float(np.mean(offset_error <= 0.5)), 5),
        "offset_error_max_ns": round(float(offset_error.max()), 3),
        "offset_error_rms_ns": round(float(np.sqrt(np.mean(offset_error**2))), 3),
        "simulate_s": round(simulate_s, 1),
        "fit_s": round(fit_s, 1),
        "fit_events_per_s": round(fitted.n_events / fit_s),
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
