"""The demo installations, made with the ``dqm`` command line (the simulator's and the job server's
commands too: this module stands above every package of the checkout).

Each keeps everything in its own data directory (an SQLite database, the embedded broker, raw files
and truth), so it needs no service and never touches the data of a real installation.

- ``make demo`` (``python demo.py``): the full demo in ``data/demo``, made afresh each time: a laser
  run and the calibration derived from it, a source run, eight short physics runs (one with a drop
  of light yield, one with dead and hot PMTs) and a laser run with drifted gains, each with its
  analyses; then it serves the dashboard on them. Look at it afterwards with
  ``DQM_DATA_DIR=data/demo .venv/bin/dqm runs``.
- ``python demo.py --small DIR`` (:func:`build`): a small installation in about 30 s, two processed
  physics runs (one with injected dead and hot PMTs), one whose second file arrives truncated and
  one still taking data. The dashboard's browser tests, its benchmark and the notebooks' tests use
  it; to try the dashboard on one::

      python demo.py --small /tmp/dqm-small && DQM_DATA_DIR=/tmp/dqm-small dqm serve
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
#: Where ``make demo`` keeps its data.
DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"

GOOD_RUN, FAULTY_RUN, OPEN_RUN, BROKEN_RUN = 20001, 20002, 20003, 20004
N_DEAD, N_HOT = 40, 8

#: The runs of ``make demo``, in order, with their ``dqm simulate`` options.
DEMO_LASER_RUN, DEMO_RAMP_UP_RUN = 10001, 10003
_PHYSICS = ("--files", "1", "--events", "1500")
DEMO_RUNS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (DEMO_LASER_RUN, ("--type", "laser", "--events", "2000")),
    (10002, ("--type", "calibration", "--source", "Cs137", "--events", "2000")),
    (DEMO_RAMP_UP_RUN, (*_PHYSICS, "--rate", "600")),
    (10004, _PHYSICS),
    (10005, ("--files", "2", "--events", "1000")),
    (10006, _PHYSICS),
    (10007, (*_PHYSICS, "--fault", "ly_drop:fraction=0.03")),
    (10008, _PHYSICS),
    (10009, (*_PHYSICS, "--fault", "dead:n=40", "--fault", "hot:n=8,occupancy=0.998")),
    (10010, _PHYSICS),
    (10011, ("--type", "laser", "--events", "2000", "--fault", "gain_drift:fraction=-0.1")),
)


@dataclass(frozen=True)
class DemoData:
    """A small demo installation: where it is, the environment that selects it, the truth."""

    data_dir: Path
    env: dict[str, str]
    dead: frozenset[int]
    hot: frozenset[int]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'dqm.sqlite'}"


def demo_env(data_dir: Path) -> dict[str, str]:
    """This process's environment with everything under ``data_dir``.

    No ``DQM_*`` variable of the caller's is kept: the demo's configuration is all embedded.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env["DQM_DATA_DIR"] = str(data_dir)
    return env


def _dqm(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN / "dqm"), *args], check=True, env=env, stdout=subprocess.DEVNULL, timeout=600
    )


def build(data_dir: Path) -> DemoData:
    """Simulate and process the small demo's runs under ``data_dir`` (about 30 s on two cores)."""
    env = demo_env(data_dir)
    _dqm(env, "init-db")
    common = ("--files", "1", "--events", "600", "--notify", "--seed")
    _dqm(env, "simulate", str(GOOD_RUN), *common, "1")
    _dqm(
        env,
        "simulate",
        str(FAULTY_RUN),
        *common,
        "2",
        "--fault",
        f"dead:n={N_DEAD}",
        "--fault",
        f"hot:n={N_HOT},occupancy=0.998",
    )
    # a run whose second file arrives truncated: its job fails, the first file's goes on
    _dqm(
        env,
        "simulate",
        str(BROKEN_RUN),
        "--files",
        "2",
        "--events",
        "200",
        "--notify",
        "--fault",
        "corrupt:seq=1",
    )
    _dqm(env, "jobserver", "--once", "--retry-base", "0.2", "--max-attempts", "2")
    _dqm(env, "run", "add", str(OPEN_RUN), "--type", "physics")
    truth = json.loads(
        (data_dir / "truth" / str(FAULTY_RUN) / f"{FAULTY_RUN}.faults.json").read_text()
    )
    return DemoData(
        data_dir=data_dir,
        env=env,
        dead=frozenset(truth["pmts"]["dead"]),
        hot=frozenset(truth["pmts"]["hot"]),
    )


def full_demo(serve: bool = True) -> None:
    """``make demo``: set up the embedded database, simulate runs, process them, serve them
    (``serve=False``: stop once they are processed)."""
    from dqm.detector import load_pmts

    env = demo_env(DEMO_DIR)

    def dqm(*args: str) -> None:
        # Shown as it runs, output and all: the demo is there to be watched.
        print(f"$ dqm {' '.join(args)}", flush=True)
        subprocess.run([str(BIN / "dqm"), *args], check=True, env=env)

    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    dqm("config")
    dqm("init-db")
    pmts = load_pmts()
    counts = pmts["type"].value_counts()
    print(
        f"PMT map: {len(pmts)} large PMTs ({counts['NNVT']} NNVT, {counts['Hamamatsu']} Hamamatsu) "
        "from data/pmt_positions.csv"
    )
    # The detector's stand-in, an hour a run, ending an hour ago: a laser run (gains and
    # timing), a source run, eight short physics runs (one ramping up, one with a 3% drop of
    # light yield, one with dead and hot PMTs) and a laser run whose gains drifted in a sector,
    # announced on the embedded broker. The analyses of each run follow its processing, so the
    # Trends page has something to show.
    first = dt.datetime.now(dt.UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    first -= dt.timedelta(hours=len(DEMO_RUNS) + 1)
    for index, (run_id, options) in enumerate(DEMO_RUNS):
        start = (first + dt.timedelta(hours=index)).isoformat()
        dqm("simulate", str(run_id), *options, "--start", start, "--overwrite", "--notify", "-q")
        if run_id == DEMO_LASER_RUN:
            # Process the laser run, then derive the PMT gains and offsets from it for the runs
            # after it.
            dqm("jobserver", "--once")
            dqm("calibrate", str(run_id))
    # The job server takes the messages and processes every file, then stops when idle.
    dqm("jobserver", "--once")
    dqm("run", "tag", str(DEMO_RAMP_UP_RUN), "ramp_up")
    dqm("runs")
    dqm("analyses", "list")
    dqm("jobs", "--limit", "5")
    print(f"The demo's data are in {DEMO_DIR}: DQM_DATA_DIR={DEMO_DIR} {BIN / 'dqm'} runs")
    if not serve:
        return
    print("The dashboard: http://127.0.0.1:5006  (Ctrl-C to stop)", flush=True)
    os.execve(str(BIN / "dqm"), [str(BIN / "dqm"), "serve"], env)


def small_demo(target: Path) -> None:
    """``python demo.py --small DIR``: the small installation in a new directory, and its truth."""
    if target.exists() and any(target.iterdir()):
        sys.exit(f"{target} is not empty: give a new directory.")
    data = build(target)
    print(f"dead PMTs of run {FAULTY_RUN}: {sorted(data.dead)}")
    print(f"hot PMTs of run {FAULTY_RUN}: {sorted(data.hot)}")
    print(f"DQM_DATA_DIR={target} dqm serve")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the full demo, or with ``--small DIR`` the small installation."""
    parser = argparse.ArgumentParser(
        prog="demo.py", description="Build a demo installation (see the module's docstring)."
    )
    parser.add_argument(
        "--small",
        metavar="DIR",
        type=Path,
        default=None,
        help="make the small installation in DIR (a directory that does not exist yet) and stop",
    )
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="build the full demo and stop, without serving the dashboard",
    )
    args = parser.parse_args(argv)
    try:
        if args.small is not None:
            small_demo(args.small)
        else:
            full_demo(serve=not args.no_serve)
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()
