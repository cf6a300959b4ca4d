"""The demo behind `make demo`: set up the embedded database, simulate runs, process them.

Runs against the configuration in force (by default an SQLite file and an embedded broker under
data/), so it needs no service.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def dqm(*args: str) -> None:
    print(f"$ dqm {' '.join(args)}", flush=True)
    subprocess.run([str(BIN / "dqm"), *args], check=True)


def main() -> None:
    from dqm.detector import load_pmts

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
        "hot:n=8",
        "--overwrite",
        "--notify",
    )
    # The job server takes the messages and processes every file, then stops when idle.
    dqm("jobserver", "--once")
    dqm("runs")
    dqm("jobs", "--limit", "5")
    print(
        "Not yet in the demo: the dashboard that shows these runs (the database, PMT geometry, "
        "simulator, broker, job server and dqm command line are ready)."
    )


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
