"""Detection: what the default checks find in simulated runs with faults, and what they say of clean
ones.

    .venv/bin/python bench/detection.py [--seed 1] [--clean 20] [--faulty 20] [--events 2000]

Simulates ``--clean`` + ``--faulty`` small physics runs (two files of ``--events`` events each) in
a random order (the first two are clean: the first references), each faulty run with one fault of
the simulator's catalogue with parameters drawn at random in realistic ranges:

- ``dead``: 5–50 PMTs; ``hot``: 1–5 PMTs; ``noisy``: 5–30 PMTs at 0.2–2 MHz;
- ``gain_drift``: −15 % to −5 % in a 30° sector; ``time_shift``: 3–10 ns on a 30° sector;
- ``ly_drop``: 2–10 %; ``rate_burst``: 3–10 times the rate in one file; ``corrupt``: one file.

Each run is announced on the embedded broker and processed by the job server (SQLite, two worker
processes), its analyses and checks included, before the next one. A faulty run counts as found
when its quality is Bad or Warning *for the right reason*: one of the checks that look at what the
fault breaks (:data:`RIGHT_CHECKS`) is Bad or Warning. Figures (the last line is one JSON object):

- ``found_<kind>_fraction`` per fault kind, ``found_fraction`` overall;
- ``clean_bad_count`` and ``clean_warning_count``: clean runs judged Bad, or Warning;
- ``wall_s``: the whole measurement.

Goals: every kind found in ≥ 90 % of its runs, ≥ 95 % overall; no Bad on a clean run and at most one
Warning in 20. Report two seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _benchpath import print_figures

from daqsim import SimulationConfig, parse_fault, simulate_run
from dqm.checks.quality import Quality
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from pipeline.executors import LocalExecutor
from pipeline.server import JobServer, ServerOptions

#: The checks whose Bad or Warning is the right reason for each fault.
RIGHT_CHECKS = {
    "dead": {"pmt_classes"},
    "hot": {"pmt_classes"},
    "noisy": {"pmt_classes"},
    "gain_drift": {"pmt_gain_sectors", "calib_charge_shape", "calib_mean_charge"},
    "time_shift": {"pmt_time_sectors", "calib_hit_time_shape", "rec_vertex_shape"},
    "ly_drop": {"energy_po210_peak", "energy_po210_drift", "rec_energy_shape", "calib_nhits_shape"},
    "rate_burst": {"rec_trigger_interval_shape", "trigger_rate_stability"},
    "corrupt": {"processing"},
}
KINDS = tuple(RIGHT_CHECKS)
FIRST_RUN = 50_000


def draw_fault(kind: str, rng: random.Random) -> str:
    """A fault of ``kind`` with parameters drawn in realistic ranges."""
    start = rng.randrange(-180, 150, 30)
    sector = f"phi={start}..{start + 30}"
    return {
        "dead": lambda: f"dead:n={rng.randint(5, 50)}",
        "hot": lambda: f"hot:n={rng.randint(1, 5)}",
        "noisy": lambda: f"noisy:n={rng.randint(5, 30)},rate_hz={rng.uniform(2e5, 2e6):.0f}",
        "gain_drift": lambda: f"gain_drift:{sector},fraction={-rng.uniform(0.05, 0.15):.3f}",
        "time_shift": lambda: f"time_shift:{sector},shift_ns={rng.uniform(3, 10):.2f}",
        "ly_drop": lambda: f"ly_drop:fraction={rng.uniform(0.02, 0.10):.3f}",
        "rate_burst": lambda: f"rate_burst:factor={rng.uniform(3, 10):.1f},seq={rng.randint(0, 1)}",
        "corrupt": lambda: f"corrupt:seq={rng.randint(0, 1)}",
    }[kind]()


def plan(seed: int, n_clean: int, n_faulty: int) -> list[tuple[int, str | None, str | None]]:
    """``(run, fault kind, fault)`` in the order they are taken: two clean runs first."""
    rng = random.Random(seed)
    kinds = [KINDS[i % len(KINDS)] for i in range(n_faulty)]
    rng.shuffle(kinds)
    rest: list[str | None] = [*kinds, *([None] * (n_clean - 2))]
    rng.shuffle(rest)
    order: list[str | None] = [None, None, *rest]
    return [
        (FIRST_RUN + seed * 1000 + i, kind, draw_fault(kind, rng) if kind else None)
        for i, kind in enumerate(order)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clean", type=int, default=20)
    parser.add_argument("--faulty", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000, help="events per file (2 files)")
    args = parser.parse_args()
    if args.clean < 2:
        parser.error("--clean must be at least 2 (the first runs are the references)")
    started = time.perf_counter()
    found: dict[str, list[bool]] = defaultdict(list)
    clean_bad = clean_warning = 0
    with tempfile.TemporaryDirectory(prefix="dqm-detection-") as tmp:
        settings = load_settings(
            env={"DQM_DATA_DIR": tmp, "DQM_DATABASE_URL": f"sqlite:///{Path(tmp) / 'dqm.sqlite'}"}
        )
        migrate.upgrade(settings.database_url)
        executor = LocalExecutor(2)
        options = ServerOptions(poll_s=0.05, retry_base_s=0.2, availability_poll_s=0.2)
        steps = plan(args.seed, args.clean, args.faulty)
        for index, (run_id, kind, fault) in enumerate(steps):
            simulate_run(
                SimulationConfig(
                    run_id=run_id,
                    n_files=2,
                    events_per_file=args.events,
                    n_jobs=1,
                    seed=run_id * 7919 + args.seed,
                    faults=(parse_fault(fault),) if fault else (),
                    start_time=dt.datetime(2026, 11, 1) + dt.timedelta(hours=index),
                ),
                settings,
                notify=True,
                progress=False,
            )
            server = JobServer(settings, executor, options)
            server.run(once=True, max_seconds=600)
            with transaction(settings.database_url) as session:
                run = queries.get_run(session, run_id=run_id)
                flagged = {
                    r.check_name: r
                    for r in queries.check_results(session, run_id=run_id)
                    if r.quality in (Quality.BAD, Quality.WARNING)
                }
                quality = run.quality
            if kind is None:
                clean_bad += quality == Quality.BAD
                clean_warning += quality == Quality.WARNING
                verdict = f"clean: {quality}"
            else:
                right = sorted(RIGHT_CHECKS[kind] & set(flagged))
                found[kind].append(bool(right))
                verdict = f"{fault}: {'found by ' + ', '.join(right) if right else 'MISSED'}"
            others = ", ".join(f"{name} {r.quality}" for name, r in sorted(flagged.items()))
            print(
                f"[{index + 1:>2}/{len(steps)}] run {run_id} {verdict}"
                + (f" (flagged: {others})" if others else ""),
                file=sys.stderr,
                flush=True,
            )
            if kind is None:  # why a clean run was flagged, to tune the thresholds
                for name, r in sorted(flagged.items()):
                    print(f"      {name}: {r.sentence}", file=sys.stderr, flush=True)
        executor.close()
        dispose_engines()
    figures: dict[str, float] = {"seed": args.seed}
    total = [hit for hits in found.values() for hit in hits]
    for kind in KINDS:
        hits = found.get(kind, [])
        figures[f"found_{kind}_fraction"] = (
            round(sum(hits) / len(hits), 3) if hits else float("nan")
        )
    figures["found_fraction"] = round(sum(total) / len(total), 3) if total else float("nan")
    figures["clean_bad_count"] = clean_bad
    figures["clean_warning_count"] = clean_warning
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    print_figures(figures)


if __name__ == "__main__":
    main()
