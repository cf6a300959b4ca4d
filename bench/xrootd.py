"""Benchmark of the pipeline on a raw file read over XRootD (``root://``) against the same file
read locally, in the same run.

Simulates a JUNO-like physics file (20,000 events of 2.5 MeV by default, ~730 MB) into a directory
that Debian's ``xrootd`` serves on 127.0.0.1 (started here, as the tests start it), then times, in
alternation, the job server's processing of the file (``tlh``, ``n_jobs=2``, its size and adler32
announced and verified):

- from its local path;
- from its ``root://`` URL on a server that answers checksum queries (``xrootd.chksum adler32``,
  as EOS does): the file is read where it is, the server gives the adler32;
- from its ``root://`` URL on a server that computes no checksum: the file is copied once to a
  local temporary file, its adler32 computed on the way, and the copy processed.

The figures are medians: ``ratio_xrootd_to_local`` (goal: at most 1.3) and
``ratio_xrootd_copy_to_local``.

    .venv/bin/python bench/xrootd.py [--events 20000] [--repeat 3]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import _benchpath
import numpy as np
from _benchpath import print_figures

from daqsim import SimulationConfig, simulate_run
from dqm.config import load_settings
from pipeline.stages import calib, processing
from pipeline.stages.reading import RawFile

# The tests' XRootD server; appended after the packages are imported (tests/dqm is no package).
sys.path.append(str(_benchpath.HERE.parent / "tests"))
from xrootdserver import served_directory, xrootd_server


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--energy", type=float, default=2.5, help="MeV")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each")
    args = parser.parse_args()
    with served_directory() as served:
        settings = load_settings(env={"DQM_DATA_DIR": str(served)})
        _log(f"simulating {args.events:,} events of {args.energy} MeV ...")
        sim = simulate_run(
            SimulationConfig(
                run_id=1, n_files=2, events_per_file=args.events, energy_mev=args.energy, n_jobs=2
            ),
            settings,
            progress=True,
        )
        (first, warm_up) = sim.files
        with np.load(served / "truth" / "1" / "1.0.truth.npz") as z:
            constants = calib.CalibConstants(1, z["gain"], z["offset_ns"])
        task = processing.FileTask(
            file=RawFile(first.path, 1, 0, first.size, first.checksum),
            calibration=constants,
            rec_method="tlh",
            n_jobs=2,
        )
        relative = first.path.relative_to(served)
        with (
            xrootd_server(served, checksums=True) as checksums,
            xrootd_server(served, checksums=False) as plain,
        ):
            where = {
                "local": first.path,
                "xrootd": checksums.url(relative),
                "xrootd_copy": plain.url(relative),
            }
            _log("warming up (page cache, compiled kernels, worker processes) ...")
            warm = RawFile(warm_up.path, 1, 1, warm_up.size, warm_up.checksum)
            processing.process_file(replace(task, file=warm))
            # a running job server's workers have read over XRootD before (imports, connections)
            url = checksums.url(warm_up.path.relative_to(served))
            processing.process_file(replace(task, file=replace(warm, path=url)))
            times: dict[str, list[float]] = {name: [] for name in where}
            for i in range(args.repeat):
                for name, location in where.items():
                    t0 = time.perf_counter()
                    result = processing.process_file(
                        replace(task, file=replace(task.file, path=location))
                    )
                    times[name].append(time.perf_counter() - t0)
                    assert result.n_events == first.n_events
                _log(
                    f"{i + 1}/{args.repeat}: "
                    + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items())
                )
    medians = {name: statistics.median(values) for name, values in times.items()}
    n = first.n_events
    print_figures(
        {
            "events": n,
            "file_mb": round(first.size / 1e6, 1),
            "local_s": round(medians["local"], 3),
            "xrootd_s": round(medians["xrootd"], 3),
            "xrootd_copy_s": round(medians["xrootd_copy"], 3),
            "events_per_s_local": round(n / medians["local"]),
            "events_per_s_xrootd": round(n / medians["xrootd"]),
            "ratio_xrootd_to_local": round(medians["xrootd"] / medians["local"], 2),
            "ratio_xrootd_copy_to_local": round(medians["xrootd_copy"] / medians["local"], 2),
        }
    )


if __name__ == "__main__":
    main()
