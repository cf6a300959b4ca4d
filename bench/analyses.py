"""Analyses: how long a run waits for its analyses, and the trend of a variable over 10,000 runs in
the dashboard.

    .venv/bin/python bench/analyses.py [--runs 10000] [--postgresql URL]

How long a run waits (``p95_all_done_s``, also ``p50_all_done_s`` and ``max_all_done_s``): twelve
demo-size runs (as in ``make demo``: two laser runs, a source run, nine short physics runs) are
simulated and announced one after the other on the embedded broker while ``dqm jobserver --max-jobs
2`` runs with the built-in analyses; the next run comes once the previous one is All Completed. For
each run, the time from its data complete (its last merge DONE) to every analysis job of it DONE,
from the jobs' records; ``p95_analysis_job_s`` is one analysis job's time from submission to DONE.

The trend: fills a fresh SQLite database (and, with ``--postgresql``, that empty PostgreSQL database too) with
``--runs`` runs, each with a result of one analysis of two variables (``energy_scale`` v1:
``peak_mev`` and ``resolution``), stored by the real queries. Figures (the last line is one JSON
object):

- ``trend_10k_query_ms``: reading one variable over all runs (one indexed query, read as columns;
  median of 10).
- ``trend_10k_server_ms``: on the server, in one process: the choice of the other variable on a
  trend page showing one, through the state's query, the plot's new data and the Bokeh patch that
  goes to the browser, serialised (median of 10 choices).
- ``trend_10k_refresh_server_ms``: the same for a periodic refresh that finds one new result: the
  check that nothing older changed, the new point read and streamed (median of 5).
- ``trend_10k_browser_ms``: in Chromium, on ``dqm serve``: from the choice of the other variable
  (the Variables widget's value changed, as a click does) to the new values in the browser's plot
  and the next frame drawn (median of 5).
- ``trend_10k_server_postgresql_ms``, ``trend_10k_query_postgresql_ms``: the first two on
  PostgreSQL (with ``--postgresql``).

Needs /usr/bin/chromium (Debian's package) and the playwright Python package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _benchpath import print_figures

from daqsim import SimulationConfig, parse_fault, simulate_run
from dqm.analyses.declarations import Declaration, VariableSpec
from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.session import dispose_engines, transaction
from dqm.states import JobState, RunStatus

CHROMIUM = "/usr/bin/chromium"
ANALYSIS, VERSION = "energy_scale", 1
FIRST_RUN = 100_000

#: The analysis whose results fill the database, recorded as the loader records a declaration.
DECLARATION = Declaration(
    name=ANALYSIS,
    version=VERSION,
    description="Position and width of the 2.2 MeV neutron-capture peak.",
    function="dqm.analyses.builtin.energy:energy_scale",
    requires=("event_table",),
    timeout_s=600,
    variables={
        "peak_mev": VariableSpec("peak_mev", "MeV", "peak", (2.1, 2.3)),
        "resolution": VariableSpec("resolution", "%", "width"),
    },
).to_json()


def peak_mev(k: int) -> float:
    return 2.2 + 0.02 * math.sin(k / 50)


def resolution(k: int) -> float:
    return 3.0 + 0.1 * math.cos(k / 70)


def fill_database(url: str, n_runs: int) -> None:
    """``n_runs`` finished runs, an hour apart, each with a result of the analysis."""
    from dqm.db import migrate, queries
    from dqm.db.session import transaction
    from dqm.states import RunStatus

    migrate.upgrade(url)
    start = dt.datetime(2026, 1, 1) - dt.timedelta(hours=n_runs)
    rows = [
        {
            "run_id": FIRST_RUN + k,
            "run_type": "physics",
            "detector": "CD",
            "start_time": start + dt.timedelta(hours=k),
            "end_time": start + dt.timedelta(hours=k, minutes=50),
            "status": RunStatus.ALL_COMPLETED,
            "n_events": 60_000,
            "n_files": 1,
            "sampling_fraction": 1.0,
        }
        for k in range(n_runs)
    ]
    with transaction(url) as session:
        queries.add_runs(session, rows=rows)
        queries.record_analysis_declaration(
            session, name=ANALYSIS, version=VERSION, declaration=DECLARATION, origin="bench"
        )
    with transaction(url) as session:
        for k in range(n_runs):
            save_result(session, FIRST_RUN + k, k)


def save_result(session: Any, run_id: int, k: int) -> None:
    from dqm.db import queries

    queries.save_analysis_result(
        session,
        analysis=ANALYSIS,
        version=VERSION,
        run_id=run_id,
        values=[
            queries.StoredValue("peak_mev", peak_mev(k), 0.01, "MeV"),
            queries.StoredValue("resolution", resolution(k), 0.05, "%"),
        ],
        data={},
        lineage={"code_version": "bench"},
    )


def query_ms(url: str) -> float:
    """Median time to read one variable over all runs."""
    from app.source import Source

    source = Source(url)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        source.trend(ANALYSIS, VERSION, ["peak_mev"])
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def server_ms(url: str, n_runs: int) -> dict[str, float]:
    """Median times of a choice of variable and of a refresh with one new result, from the change
    to the Bokeh patch serialised as it goes to the browser."""
    import panel as pn
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    from app.source import Source
    from app.trends import TrendsState
    from app.trendsview import TrendsView
    from dqm.db import queries
    from dqm.db.session import transaction

    protocol = Protocol()
    state = TrendsState(
        source=Source(url), analysis=ANALYSIS, version=VERSION, variables=["peak_mev"]
    )
    view = TrendsView(state=state)
    document = Document()
    layout = pn.panel(view)
    assert isinstance(layout, pn.viewable.Viewable)  # a Viewer's layout, not a template
    document.add_root(layout.get_root(document))
    events: list[Any] = []
    document.on_change(events.append)

    def patch_ms(change: Any) -> float:
        events.clear()
        t0 = time.perf_counter()
        change()
        protocol.create("PATCH-DOC", list(events))  # serialised here, buffers and all
        elapsed = time.perf_counter() - t0
        assert events, "a change sends model changes"
        return 1000 * elapsed

    choices = [
        patch_ms(lambda k=k: setattr(state, "variables", [("resolution", "peak_mev")[k % 2]]))
        for k in range(10)
    ]
    assert len(state.series["peak_mev"]) == n_runs

    def one_more(k: int) -> None:
        with transaction(url) as session:
            queries.add_run(
                session,
                run_id=FIRST_RUN + k,
                run_type="physics",
                start_time=dt.datetime(2026, 1, 1) + dt.timedelta(hours=k),
            )
            save_result(session, FIRST_RUN + k, k)

    refreshes = []
    for k in range(n_runs, n_runs + 5):
        one_more(k)
        refreshes.append(patch_ms(state.refresh))
        assert state.update is not None and len(state.series["peak_mev"]) == k + 1
    return {
        "trend_10k_server_ms": statistics.median(choices),
        "trend_10k_refresh_server_ms": statistics.median(refreshes),
    }


#: The values of the trend's plot in the browser (null before it arrived).
VALUES_IN_BROWSER = """() => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.outside && m.data.value) return m.data.value;
  return null;
}"""

#: Choose a variable as a click in the Variables widget does.
CHOOSE = """(variable) => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.constructor.__name__ === "MultiChoice" && m.options.includes(variable)) {
        m.value = [variable];
        return true;
      }
  return false;
}"""


def browser_ms(url: str, n_runs: int) -> float:
    """Median time in Chromium from the choice of a variable to its values in the plot and the
    next frame drawn."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env["DQM_DATABASE_URL"] = url
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dqm"), "serve", "--port", str(port)]
        + ["--refresh", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(server, port)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(
                f"http://127.0.0.1:{port}/?page=trends&analysis={ANALYSIS}&version={VERSION}"
                "&variables=peak_mev"
            )
            page.wait_for_function(f"() => ({VALUES_IN_BROWSER})()?.length === {n_runs}")
            times = []
            for k in range(6):
                variable, first = (
                    ("resolution", resolution(0)) if k % 2 == 0 else ("peak_mev", peak_mev(0))
                )
                t0 = time.perf_counter()
                assert page.evaluate(CHOOSE, variable)
                page.wait_for_function(
                    f"() => Math.abs(({VALUES_IN_BROWSER})()[0] - {first}) < 1e-9",
                    polling="raf",
                )
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
                if k:  # the first choice warms the page up
                    times.append(time.perf_counter() - t0)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 1000 * statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(process: subprocess.Popen[Any], port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the dashboard server did not start") from None
            time.sleep(0.2)


#: The runs, as in ``make demo``: (run type, events, options).
RUNS: list[tuple[str, int, dict[str, Any]]] = [
    ("laser", 2000, {}),
    ("calibration", 2000, {"source": "Cs137"}),
    *[("physics", 1500, {}) for _ in range(8)],
    ("physics", 1500, {"faults": (parse_fault("ly_drop:fraction=0.03"),)}),
    ("laser", 2000, {"faults": (parse_fault("gain_drift:fraction=-0.1"),)}),
]


def _wait_complete(url: str, run_id: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with transaction(url) as session:
            run = queries.find_run(session, run_id=run_id)
            if run is not None and run.status in (RunStatus.ALL_COMPLETED, RunStatus.FAILED):
                return
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not complete in {timeout_s} s")


def latency_figures() -> dict[str, float]:
    """``p95_all_done_s`` and friends: data complete → all analyses DONE, over the runs."""
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        url = f"sqlite:///{tmp / 'dqm.sqlite'}"
        migrate.upgrade(url)
        env = {"DQM_DATA_DIR": str(tmp / "data"), "DQM_DATABASE_URL": url}
        settings = load_settings(env=env)
        log = (tmp / "jobserver.log").open("w")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "dqm"), "jobserver", "--max-jobs", "2"],
            env={**clean, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            start = dt.datetime(2026, 12, 1, 8, 0)
            for index, (run_type, events, options) in enumerate(RUNS):
                run_id = 50_001 + index
                config = SimulationConfig(
                    run_id=run_id,
                    run_type=run_type,
                    events_per_file=events,
                    n_jobs=2,
                    start_time=start + dt.timedelta(hours=index),
                    **options,
                )
                simulate_run(config, settings, notify=True, progress=False, overwrite=True)
                _wait_complete(url, run_id)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        latencies, analysis_seconds, failed = [], [], 0
        with transaction(url) as session:
            for index in range(len(RUNS)):
                run_id = 50_001 + index
                jobs = queries.list_jobs(session, run_id=run_id, limit=None)
                merged = max(j.finished_at for j in jobs if j.kind == "merge_run" and j.finished_at)
                analyses = [j for j in jobs if j.kind == "analysis"]
                failed += sum(1 for j in analyses if j.state is not JobState.DONE)
                done = max(j.finished_at for j in analyses if j.finished_at)
                latencies.append((done - merged).total_seconds())
                analysis_seconds += [
                    (j.finished_at - j.submitted_at).total_seconds()
                    for j in analyses
                    if j.finished_at and j.submitted_at
                ]
        dispose_engines()
    values = np.array(latencies)
    return {
        "latency_runs": float(len(RUNS)),
        "p50_all_done_s": float(np.percentile(values, 50)),
        "p95_all_done_s": float(np.percentile(values, 95)),
        "max_all_done_s": float(values.max()),
        "p95_analysis_job_s": float(np.percentile(analysis_seconds, 95)),
        "analyses_not_done": float(failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--postgresql", metavar="URL", default=None, help="An empty PostgreSQL database to use too."
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")

    figures: dict[str, float] = {}
    print(f"processing {len(RUNS)} demo-size runs with their analyses…", flush=True)
    figures.update(latency_figures())
    with tempfile.TemporaryDirectory(prefix="dqm-bench-analyses-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dqm.sqlite'}"
        print(f"storing {args.runs:,} results…", flush=True)
        fill_database(url, args.runs)
        figures["trend_10k_query_ms"] = query_ms(url)
        figures["trend_10k_browser_ms"] = browser_ms(url, args.runs)
        figures.update(server_ms(url, args.runs))  # adds runs: last
    if args.postgresql:
        fill_database(args.postgresql, args.runs)
        figures["trend_10k_query_postgresql_ms"] = query_ms(args.postgresql)
        figures["trend_10k_server_postgresql_ms"] = server_ms(args.postgresql, args.runs)[
            "trend_10k_server_ms"
        ]
    print_figures({k: round(v, 1) for k, v in figures.items()} | {"runs": args.runs})


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
