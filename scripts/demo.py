"""The demo behind `make demo`: set up the embedded database and show what the system has so far.

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
    dqm("runs")
    print(
        "Not yet in the demo: the DAQ simulator, the job server and the dashboard "
        "(the database, the PMT geometry and the dqm command line are ready)."
    )


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
