"""Benchmark of the run merge against ROOT's hadd on the same content.

Makes N per-file results (default 100) with the real histogram set — the Calib and Rec histograms
of the pipeline, filled with random data, their derived rate histograms, and the per-PMT sums of
17,612 PMTs — and stores them as the job server does (one SQLite database in a temporary
directory). Then times:

- **merge**: the ``merge_run`` job as the job server runs it (its registered ``prepare``,
  ``execute`` and ``complete``): read every file's rows, decode them (``dqm.histcodec``), sum them
  (``pipeline.stages.calib.merge_results``), encode and store the run's histograms and PMT sums;
- **hadd**: ``hadd -f out.root in*.root`` on N ROOT files with the same histograms (written by
  ``dqm.rootexport.histogram_to_root``) and the per-PMT sums as one TH1D each (17,612 bins), so
  that hadd sums them as the merge does. Only hadd itself is timed, as a subprocess.

Each is run ``--repeat`` times after one warm-up; the figures are medians. Prints progress and the
figures; the last line is one JSON object.

    .venv/bin/python bench/merge.py [--files 100] [--repeat 3]

``measure(n_files=100)`` gives the same figures as a dict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _benchpath  # noqa: F401  (first: bench/ leaves sys.path)
import numpy as np
import uproot
from _benchpath import print_figures

from dqm import detector
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.rootexport import histogram_to_root
from dqm.states import FileState
from pipeline import jobs
from pipeline.stages import calib, reco

RUN = 1
EVENTS_PER_FILE = 80_000


def _log(message: str) -> None:
    print(message, flush=True)


def hadd_path() -> Path:
    """ROOT's hadd as the PyPI wheel installs it (site-packages/ROOT/bin), or the one on PATH."""
    spec = importlib.util.find_spec("ROOT")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "hadd"
        if candidate.is_file():
            return candidate
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory and (Path(directory) / "hadd").is_file():
            return Path(directory) / "hadd"
    raise SystemExit("hadd not found: pip install root (or put ROOT's bin on PATH).")


def make_part(rng: np.random.Generator, n_fill: int = 20_000) -> dict[str, Any]:
    """One file's result: the Calib and Rec histograms with random contents and per-PMT sums."""
    histograms = {calib.STAGE: calib.calib_histograms(), reco.STAGE: reco.rec_histograms()}
    for stage in histograms.values():
        for h in stage.values():
            if len(h.axes) == 1 and h.axes[0].size == detector.N_PMTS:
                h.view()[:] = rng.poisson(400, detector.N_PMTS)
                continue
            samples = []
            for axis in h.axes:
                lo, hi = axis.edges[0], axis.edges[-1]
                span = hi - lo
                samples.append(rng.uniform(lo - 0.05 * span, hi + 0.05 * span, n_fill))
            h.fill(*samples)
    n_pmts = detector.N_PMTS
    hits = rng.poisson(400, n_pmts).astype(float)
    sums = {
        "hit_count": hits,
        "fired_events": np.minimum(hits, rng.poisson(350, n_pmts)),
        "charge_sum": hits * rng.uniform(0.9, 1.1, n_pmts),
        "time_sum": hits * rng.uniform(200, 300, n_pmts),
        "dark_count": rng.poisson(500, n_pmts).astype(float),
    }
    signal = rng.poisson(40, n_pmts).astype(float)  # the signal hits of central events
    sums |= {
        "signal_hits": signal,
        "signal_charge_sum": signal * rng.uniform(0.9, 1.1, n_pmts),
        "signal_time_sum": signal * rng.uniform(200, 300, n_pmts),
    }
    livetime = EVENTS_PER_FILE * detector.PRETRIGGER_WINDOW_NS
    histograms[calib.STAGE].update(calib.derived_histograms(sums, EVENTS_PER_FILE, livetime))
    return {
        "histograms": histograms,
        "pmt_sums": sums,
        "n_events": EVENTS_PER_FILE,
        "livetime_ns": livetime,
    }


TITLES = {**calib.TITLES, **reco.TITLES}


def store_parts(url: str, parts: list[dict[str, Any]]) -> None:
    """Store the parts as the processed files of run 1, as ``process_file`` jobs do."""
    with transaction(url) as session:
        queries.add_run(
            session,
            run_id=RUN,
            run_type="physics",
            start_time=dt.datetime(2026, 11, 20, 8, 0),
            n_files=len(parts),
        )
        for seq, part in enumerate(parts):
            file = queries.add_file(
                session,
                run_id=RUN,
                seq=seq,
                uri=f"raw/{RUN}/{RUN}.{seq}.root",
                n_events=part["n_events"],
                state=FileState.DONE,
            )
            provenance = {"code_version": "bench", "calibration_version": 0, "events_read": 1}
            for stage, by_name in part["histograms"].items():
                for name, h in by_name.items():
                    queries.save_histogram(
                        session,
                        run_id=RUN,
                        file_id=file.id,
                        stage=stage,
                        name=name,
                        histogram=h,
                        title=TITLES.get(name),
                        provenance=provenance,
                    )
            queries.save_pmt_stats(
                session,
                run_id=RUN,
                file_id=file.id,
                n_events=part["n_events"],
                livetime_ns=part["livetime_ns"],
                arrays=part["pmt_sums"],
                provenance=provenance,
            )


def write_root_parts(directory: Path, parts: list[dict[str, Any]]) -> list[Path]:
    """The same parts as ROOT files: stage/name histograms and pmt/<sum> TH1Ds."""
    paths = []
    for seq, part in enumerate(parts):
        path = directory / f"in{seq:04d}.root"
        with uproot.recreate(path) as file:
            for stage, by_name in part["histograms"].items():
                for name, h in by_name.items():
                    file[f"{stage}/{name}"] = histogram_to_root(h, title=TITLES.get(name, name))
            n = detector.N_PMTS
            for name, values in part["pmt_sums"].items():
                file[f"pmt/{name}"] = (values.astype(np.float64), np.arange(n + 1, dtype=float))
        paths.append(path)
    return paths


def merge_job(url: str) -> dict[str, float]:
    """Run the merge_run job of the run once, as the job server does; its phases' times."""
    kind = jobs.MERGE_RUN
    context = jobs.Context(settings=load_settings(env={"DQM_DATABASE_URL": url}), server_id="bench")
    with transaction(url) as session:
        job = queries.add_job(session, kind=kind.name, run_id=RUN)
        t0 = time.perf_counter()
        argument = kind.prepare(session, job, context)
        t1 = time.perf_counter()
    result = kind.execute(argument)
    t2 = time.perf_counter()
    with transaction(url) as session:
        job = queries.get_job(session, job_id=job.id)
        t3 = time.perf_counter()
        kind.complete(session, job, result, context)
    t4 = time.perf_counter()  # after the commit
    assert result.sums.n_events == EVENTS_PER_FILE * len(argument.parts)
    return {"read_decode_s": t1 - t0, "sum_s": t2 - t1, "encode_store_s": t4 - t3}


def run_hadd(hadd: Path, output: Path, inputs: list[Path]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(hadd), "-f", str(output), *map(str, inputs)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return time.perf_counter() - t0


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def measure(
    n_files: int = 100, *, repeat: int = 3, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Time the project's merge and hadd over ``n_files`` files; the figures, by name."""
    log = log or (lambda _message: None)
    hadd = hadd_path()
    rng = np.random.default_rng(2026)
    with tempfile.TemporaryDirectory(prefix="dqm-bench-merge-") as tmp:
        directory = Path(tmp)
        url = f"sqlite:///{directory / 'bench.sqlite'}"
        migrate.upgrade(url, "head")
        log(f"making {n_files} per-file results ...")
        parts = [make_part(rng) for _ in range(n_files)]
        n_histograms = sum(len(h) for h in parts[0]["histograms"].values())
        log(f"storing them in {url} ...")
        store_parts(url, parts)
        log("writing them as ROOT files ...")
        inputs = write_root_parts(directory, parts)
        input_mb = sum(p.stat().st_size for p in inputs) / 1e6
        total_hits = float(sum(part["pmt_sums"]["hit_count"].sum() for part in parts))
        del parts

        log("merge_run (warm-up) ...")
        merge_job(url)
        phases: dict[str, list[float]] = {}
        totals = []
        for i in range(repeat):
            times = merge_job(url)
            for key, value in times.items():
                phases.setdefault(key, []).append(value)
            totals.append(sum(times.values()))
            log(f"merge_run {i + 1}/{repeat}: {totals[-1]:.3f} s")

        output = directory / "out.root"
        log("hadd (warm-up) ...")
        run_hadd(hadd, output, inputs)
        hadds = []
        for i in range(repeat):
            hadds.append(run_hadd(hadd, output, inputs))
            log(f"hadd {i + 1}/{repeat}: {hadds[-1]:.3f} s")
        # Both sums agree with the inputs.
        with uproot.open(output) as merged:
            assert np.isclose(merged["pmt/hit_count"].values().sum(), total_hits)
        with transaction(url) as session:
            stats = queries.pmt_stats_row(session, run_id=RUN)
            assert stats is not None
            assert np.isclose(queries.pmt_arrays(stats)["hit_count"].sum(), total_hits)
        dispose_engines()
    merge_s = _median(totals)
    hadd_s = _median(hadds)
    return {
        "n_files": n_files,
        "n_histograms": n_histograms,
        "n_pmts": detector.N_PMTS,
        "input_root_mb": round(input_mb, 1),
        "merge_s": round(merge_s, 3),
        **{f"merge_{key}": round(_median(values), 3) for key, values in phases.items()},
        "hadd_s": round(hadd_s, 3),
        "ratio_merge_to_hadd": round(merge_s / hadd_s, 3),
        "repeat": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="number of per-file results")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    args = parser.parse_args()
    figures = measure(args.files, repeat=args.repeat, log=_log)
    print_figures(figures)


if __name__ == "__main__":
    main()
