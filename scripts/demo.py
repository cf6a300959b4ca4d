"""The demo behind `make demo`: set up the embedded database, simulate runs, process them.

The demo keeps everything in its own data directory, ``data/demo`` (an SQLite database, the embedded
broker, raw files and truth), made afresh each time, so it needs no service and never touches the
data of a real installation. Look at it afterwards with ``DQM_DATA_DIR=data/demo .venv/bin/dqm runs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
#: The demo's own configuration: everything embedded, under data/demo.
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("DQM_")},
    "DQM_DATA_DIR": str(DEMO_DIR),
}


def dqm(*args: str) -> None:
    print(f"$ dqm {' '.join(args)}", flush=True)
    subprocess.run([str(BIN / "dqm"), *args], check=True, env=ENV)


def main() -> None:
    from dqm.detector import load_pmts

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
    # The detector's stand-in: a laser run (gains and timing), a source run and physics runs,
    # one of them with dead and hot PMTs, announced on the embedded broker.
    dqm("simulate", "10001", "--type", "laser", "--events", "2000", "--overwrite", "--notify")
    # Process the laser run, then derive the PMT gains and offsets from it for the runs after it.
    dqm("jobserver", "--once")
    dqm("calibrate", "10001")
    dqm(
        "simulate",
        "10002",
        "--type",
        "calibration",
        "--source",
        "Cs137",
        "--events",
        "2000",
        "--overwrite",
        "--notify",
    )
    dqm("simulate", "10003", "--files", "3", "--events", "2000", "--overwrite", "--notify")
    dqm(
        "simulate",
        "10004",
        "--files",
        "3",
        "--events",
        "2000",
        "--fault",
        "dead:n=40",
        "--fault",
        "hot:n=8,occupancy=0.998",
        "--overwrite",
        "--notify",
    )
    # The job server takes the messages and processes every file, then stops when idle.
    dqm("jobserver", "--once")
    dqm("runs")
    dqm("jobs", "--limit", "5")
    print(f"The demo's data are in {DEMO_DIR}: DQM_DATA_DIR={DEMO_DIR} {BIN / 'dqm'} runs")
    print("The dashboard: http://127.0.0.1:5006  (Ctrl-C to stop)", flush=True)
    os.execve(str(BIN / "dqm"), [str(BIN / "dqm"), "serve"], ENV)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
