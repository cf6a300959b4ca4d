"""Benchmark of the full pipeline on a JUNO-like physics file, against merely reading it.

Simulates a 20,000-event physics file (2.5 MeV events uniform in the volume: ~4,000 hits an event,
ZSTD), then measures in this one run:

(a) reading every branch with uproot, in one process, in the pipeline's chunks (the baseline);
(b) the full pipeline the job server runs — calibration, ``tlh`` reconstruction seeded by the
    centroid, every Calib and Rec histogram and the per-PMT sums, sampling 1.0 — with ``n_jobs=2``
    (worker processes started and warmed up beforehand, as in a running job server), its events/s,
    the ratio (b)/(a) (medians of alternating runs) and the peak RSS of the whole process tree; also with ``n_jobs=1`` and with
    the ``centroid`` method for comparison;
(c) merging 100 per-file results as the job server does, against ROOT's ``hadd`` on the same
    content (``bench/merge.py``).

    .venv/bin/python bench/pipeline.py [--events 20000] [--energy 2.5] [--merge-files 100]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import _benchpath
import numpy as np
import uproot
from _benchpath import PeakMemory, print_figures

from daqsim import SimulationConfig, simulate_run
from dqm import rawformat
from dqm.config import load_settings
from pipeline.stages import calib, processing
from pipeline.stages.reading import STEP_EVENTS, RawFile

_spec = importlib.util.spec_from_file_location("bench_merge", _benchpath.HERE / "merge.py")
assert _spec is not None and _spec.loader is not None
merge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(merge)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_all(path: str) -> int:
    """Read every branch of the events tree, chunk by chunk; the number of events."""
    n = 0
    with uproot.open(path) as file:
        for arrays in file[rawformat.EVENTS_TREE].iterate(step_size=STEP_EVENTS, library="ak"):
            n += len(arrays)
    return n


T = TypeVar("T")


def timed(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    t0 = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--energy", type=float, default=2.5, help="MeV")
    parser.add_argument("--merge-files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of (a) and (b)")
    args = parser.parse_args()
    figures: dict[str, float | int | str] = {}
    with tempfile.TemporaryDirectory(prefix="dqm-bench-pipeline-") as tmp:
        settings = load_settings(env={"DQM_DATA_DIR": tmp})
        _log(f"simulating {args.events:,} events of {args.energy} MeV ...")
        sim = simulate_run(
            SimulationConfig(
                run_id=1, n_files=2, events_per_file=args.events, energy_mev=args.energy, n_jobs=2
            ),
            settings,
            progress=True,
        )
        path, warm_up = (str(f.path) for f in sim.files)
        with np.load(Path(tmp) / "truth" / "1" / "1.0.truth.npz") as z:
            constants = calib.CalibConstants(1, z["gain"], z["offset_ns"])

        def task(path: str, method: str, n_jobs: int) -> processing.FileTask:
            return processing.FileTask(
                file=RawFile(path=Path(path), run_id=1, seq=0),
                calibration=constants,
                rec_method=method,
                n_jobs=n_jobs,
            )

        _log("warming up (page cache, compiled kernels, worker processes) ...")
        read_all(path)
        processing.process_file(task(warm_up, "tlh", 2))

        # The machine's speed varies from minute to minute: (a) and (b) alternate, medians kept.
        reads, pipelines = [], []
        with PeakMemory() as memory:
            for i in range(args.repeat):
                n, read_s = timed(read_all, path)
                reads.append(read_s)
                result, tlh_s = timed(
                    processing.process_file,
                    task(path, "tlh", 2),
                )
                pipelines.append(tlh_s)
                assert result.n_events == n
                _log(f"{i + 1}/{args.repeat}: (a) read {read_s:.2f} s, (b) pipeline {tlh_s:.2f} s")
        read_s, tlh_s = statistics.median(reads), statistics.median(pipelines)
        _log(f"(a) read all branches: {read_s:.2f} s, {n / read_s:,.0f} events/s")
        _log(f"(b) pipeline, tlh, n_jobs=2: {tlh_s:.2f} s, {n / tlh_s:,.0f} events/s")
        _, tlh1_s = timed(processing.process_file, task(path, "tlh", 1))
        _log(f"    pipeline, tlh, n_jobs=1: {tlh1_s:.2f} s, {n / tlh1_s:,.0f} events/s")
        _, centroid_s = timed(
            processing.process_file,
            task(path, "centroid", 2),
        )
        _log(
            f"    pipeline, centroid, n_jobs=2: {centroid_s:.2f} s, {n / centroid_s:,.0f} events/s"
        )
        hits = result.histograms["calib"]["occupancy"].sum() / n
        size_mb = Path(path).stat().st_size / 1e6
        figures.update(
            {
                "events": n,
                "hits_per_event": round(float(hits)),
                "file_mb": round(size_mb, 1),
                "read_s": round(read_s, 3),
                "read_events_per_s": round(n / read_s),
                "pipeline_s": round(tlh_s, 3),
                "events_per_s": round(n / tlh_s),
                "ratio_pipeline_to_read": round(tlh_s / read_s, 2),
                "ratio_pipeline_to_read_best": round(min(pipelines) / min(reads), 2),
                "peak_rss_mb": round(memory.peak_bytes / 2**20),
                "events_per_s_1_job": round(n / tlh1_s),
                "events_per_s_centroid": round(n / centroid_s),
                "fits_not_converged": result.fits_not_converged,
            }
        )
    if args.merge_files:
        _log(f"(c) merging {args.merge_files} per-file results against hadd ...")
        m = merge.measure(args.merge_files, log=_log)
        figures.update(
            {
                "merge_files": m["n_files"],
                "merge_s": m["merge_s"],
                "hadd_s": m["hadd_s"],
                "ratio_merge_to_hadd": m["ratio_merge_to_hadd"],
            }
        )
    print_figures(figures)


if __name__ == "__main__":
    main()
