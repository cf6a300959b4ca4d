"""A small demo installation: an embedded SQLite database and broker under one data directory, two
processed physics runs (one with injected dead and hot PMTs) and one still taking data, made with
the ``dqm`` command line in about 30 s. The dashboard's browser tests, its benchmark and the
notebooks' tests use it; ``python -m dqm.demo DIR`` makes one to try the dashboard on::

    python -m dqm.demo /tmp/dqm-small && DQM_DATA_DIR=/tmp/dqm-small dqm serve
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent

GOOD_RUN, FAULTY_RUN, OPEN_RUN, BROKEN_RUN = 20001, 20002, 20003, 20004
N_DEAD, N_HOT = 40, 8


@dataclass(frozen=True)
class DemoData:
    data_dir: Path
    env: dict[str, str]
    dead: frozenset[int]
    hot: frozenset[int]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'dqm.sqlite'}"


def _dqm(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(BIN / "dqm"), *args], check=True, env=env, stdout=subprocess.DEVNULL, timeout=600
    )


def build(data_dir: Path) -> DemoData:
    """Simulate and process the demo runs under ``data_dir`` (about 30 s on two cores)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env["DQM_DATA_DIR"] = str(data_dir)
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dqm.demo DATA_DIR (a directory that does not exist yet)")
    target = Path(sys.argv[1])
    if target.exists() and any(target.iterdir()):
        sys.exit(f"{target} is not empty: give a new directory.")
    data = build(target)
    print(f"dead PMTs of run {FAULTY_RUN}: {sorted(data.dead)}")
    print(f"hot PMTs of run {FAULTY_RUN}: {sorted(data.hot)}")
    print(f"DQM_DATA_DIR={target} dqm serve")
