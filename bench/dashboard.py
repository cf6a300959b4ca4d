"""Dashboard speed: the PMT map's slider, the recent-runs page on 100,000 runs, 20 sessions at once.

    .venv/bin/python bench/dashboard.py [--runs 100000] [--sessions 20] [--many-sessions 50]

Figures (the last line is one JSON object):

- ``slider_server_ms``: a dead-cut change on the server, in one process: the widget's new value
  through the cuts, the classes of 17,612 PMTs and the counts to the Bokeh model changes that go
  to the browser (median of 50 changes).
- ``slider_browser_ms``: in Chromium, from releasing the slider to the new counts on the page and
  the new classes in the browser's copy of the map (median of 10 moves).
- ``runs_first_render_s``: a new browser page of the recent runs with ``--runs`` runs in the
  database, from the request to the table's rows on the screen (median of 5 pages).
  ``panel_floor_first_render_s``: the same for a page of Panel alone, the same template and a
  table of 50 runs from memory; ``ratio_runs_first_render_to_panel_floor`` the ratio (what the
  DQM adds; the machine's speed mostly cancels).
- ``filter_change_server_ms`` / ``filter_change_browser_ms``: choosing a run type and a status on
  that page: the query and the new table on the server; and, in the browser, a run number typed in
  the search box until its row is the one shown.
- ``events_2m_render_ms``: two million events' ρ² versus z drawn through Datashader (median).
- ``p50_update_s`` / ``p95_update_s``: ``--sessions`` sessions on the PMT map at once, each
  moving its dead cut 5 times, all moves of a round sent before any is waited for: the time from
  the move to the new classes in that session. The sessions speak Bokeh's websocket protocol from
  this process (``bench/_bokehclient.py``: the whole document replicated and every patch
  applied, as in a browser, but nothing drawn), on another core than the server, as each
  shifter's browser runs on a machine of its own. ``server_cpu_per_update_ms`` is the server's
  CPU time during those moves per update.
- ``p95_update_browsers_here_s``: the same with ``--sessions`` Chromium pages, all drawing
  17,612 markers in software on this machine's cores beside the server.
- ``p50_update_50_sessions_2_procs_s`` / ``p95_update_50_sessions_2_procs_s``: ``--many-sessions``
  protocol sessions moving their dead cuts at once against one ``dqm serve --num-procs``
  ``--processes``, both cores free for all; ``server_rss_peak_50_sessions_2_procs_mb`` the
  processes' summed RSS meanwhile (``--only-many-sessions``: this part alone).
- ``server_rss_baseline_mb``, ``server_rss_peak_mb``, ``server_rss_after_mb``,
  ``rss_after_to_baseline``: the server's memory after one session (baseline), with all sessions
  open, and once they are closed and the server has dropped them.

Needs /usr/bin/chromium (Debian's package) and the playwright Python package.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
DEAD_IN_BROWSER = """() => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.pmt_class) return Array.from(m.data.pmt_class).filter(c => c == 0).length;
  return null;
}"""

#: Dead-cut positions (fractions of the slider) that each change the count from the one before,
#: the demo's hit rates being 0.1 to 0.3.
FRACTIONS = (0.12, 0.2, 0.08, 0.16, 0.24)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(process: subprocess.Popen[Any], port: int, what: str) -> None:
    """Until ``process`` accepts connections on ``port`` (a minute at most)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.2)


def add_runs(database_url: str, n: int) -> None:
    """``n`` finished runs of three types and all statuses, one a minute before the demo's."""
    from dqm.db import queries
    from dqm.db.session import transaction
    from dqm.states import RunStatus

    statuses = list(RunStatus)
    types = ["physics"] * 5 + ["laser", "calibration"]  # 7 against 5 statuses: every pair
    start = dt.datetime(2025, 1, 1)
    rows = [
        {
            "run_id": 100_000 + k,
            "run_type": types[k % len(types)],
            "detector": "CD",
            "start_time": start + dt.timedelta(minutes=k),
            "end_time": start + dt.timedelta(minutes=k, seconds=50),
            "status": statuses[k % len(statuses)],
            "n_events": 60_000,
            "n_files": 1,
            "sampling_fraction": 1.0,
        }
        for k in range(n)
    ]
    with transaction(database_url) as session:
        queries.add_runs(session, rows=rows)


def slider_server_ms(database_url: str, run_id: int) -> float:
    """Median time of a dead-cut change through the widget, the cuts and the Bokeh models."""
    import panel as pn
    from bokeh.document import Document

    from app.pmtmap import PmtMap
    from app.source import Source
    from app.state import RunState

    state = RunState(source=Source(database_url), run_id=run_id)
    view = PmtMap(cuts=state.pmt)
    document = Document()
    layout = pn.panel(view)
    assert isinstance(layout, pn.viewable.Viewable)  # a Viewer's layout, not a template
    root = layout.get_root(document)
    document.add_root(root)
    changes: list[object] = []
    document.on_change(lambda event: changes.append(event))
    slider = view._controls[0]
    assert isinstance(slider, pn.widgets.FloatSlider)  # the dead cut's
    times = []
    for k in range(50):
        value = 0.001 + 0.4 * (k % 10) / 10
        changes.clear()
        t0 = time.perf_counter()
        slider.value = value
        times.append(time.perf_counter() - t0)
        assert changes, "a cut change sends model changes"
    return 1000 * statistics.median(times)


def events_render_ms(n: int = 2_000_000) -> float:
    """Median time to draw ``n`` events' ρ² versus z through Datashader (rasterised on the server
    at the plot's size, as on every zoom): the HoloViews object to its Bokeh figure."""
    import holoviews as hv
    import numpy as np
    import pandas as pd

    from app.views import event_density

    rng = np.random.default_rng(1)
    radius = 17.0 * rng.random(n) ** (1 / 3)
    cos_theta, phi = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    rho = radius * np.sqrt(1 - cos_theta**2)
    events = pd.DataFrame(
        {
            "x_m": rho * np.cos(phi),
            "y_m": rho * np.sin(phi),
            "z_m": radius * cos_theta,
            "rho2_m2": rho**2,
            "r3": (radius / 17.7) ** 3,
            "energy_mev": rng.normal(2.0, 0.05, n),
            "time_s": np.sort(rng.uniform(0, 3600, n)),
        }
    ).astype(np.float32)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        hv.render(event_density(events, "rho2_m2", "z_m", log=False))
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def filter_change_server_ms(database_url: str) -> float:
    from app.source import Source
    from app.state import RecentRuns

    state = RecentRuns(source=Source(database_url))
    times = []
    for k in range(10):
        t0 = time.perf_counter()
        state.param.update(
            run_types=[["physics"], ["laser"]][k % 2], statuses=[["Failed"], []][k % 2]
        )
        times.append(time.perf_counter() - t0)
        assert not state.runs.empty
    return 1000 * statistics.median(times)


class Server:
    def __init__(self, env: dict[str, str], *options: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dqm"), "serve", "--port", str(self.port)]
            + ["--refresh", "10", "--session-lifetime", "5", *options],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.process, self.port, "the dashboard server")

    def rss_mb(self) -> float:
        return float(psutil.Process(self.process.pid).memory_info().rss / 1e6)

    def tree_rss_mb(self) -> float:
        """The RSS of the server and the processes it forked."""
        main = psutil.Process(self.process.pid)
        total = 0
        for process in [main, *main.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total / 1e6

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def close(self) -> None:
        self.process.terminate()  # with --num-procs, it stops the processes it forked
        self.process.wait(timeout=20)


def grab(page: Page) -> tuple[float, float, float]:
    """Press the mouse on the dead-cut handle; the slider's track as (left, width) and its y."""
    bar = page.locator(".noUi-target").first.bounding_box()
    handle = page.locator(".noUi-handle").first.bounding_box()
    assert bar is not None and handle is not None, "the slider is on the screen"
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    return bar["x"], bar["width"], bar["y"] + bar["height"] / 2


def move_and_wait(page: Page, fraction: float) -> float:
    """Drag the dead cut to ``fraction`` (the value follows the drag, as the counts do): seconds
    from the move to the new counts on the page and the new classes in the browser's map."""
    before = page.evaluate(DEAD_IN_BROWSER)
    left, width, y = grab(page)
    t0 = time.perf_counter()
    page.mouse.move(left + width * fraction, y)
    page.wait_for_function(f"() => ({DEAD_IN_BROWSER})() !== {before}", polling=5)
    elapsed = time.perf_counter() - t0
    page.mouse.up()
    return elapsed


def open_pmt_page(context: BrowserContext, url: str, run_id: int) -> Page:
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/?run={run_id}&tab=pmt")
    page.locator(".noUi-handle").first.wait_for()
    page.wait_for_function(f"() => ({DEAD_IN_BROWSER})() !== null")
    return page


def concurrent_round(
    browser: Browser,
    url: str,
    run_id: int,
    n: int,
    rounds: int,
    rss: Callable[[], float] = lambda: 0.0,
) -> tuple[list[float], float]:
    """``n`` sessions on the PMT map, each moving its dead cut ``rounds`` times while the others
    do; the latencies (s) and the server's largest RSS (MB).
    The sessions are closed after."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]
    pages = [open_pmt_page(c, url, run_id) for c in contexts]
    peak = rss()
    latencies: list[float] = []
    # Playwright's sync API drives the pages from one thread: every page's move is sent before
    # any is waited for, so that all the updates are in flight at once.
    for round_ in range(rounds):
        fraction = FRACTIONS[round_ % len(FRACTIONS)]
        before = [page.evaluate(DEAD_IN_BROWSER) for page in pages]
        grips = [grab(page) for page in pages]
        started = []
        for page, (left, width, y) in zip(pages, grips, strict=True):
            started.append(time.perf_counter())
            page.mouse.move(left + width * fraction, y)
        for page, t0, count in zip(pages, started, before, strict=True):
            page.wait_for_function(f"() => ({DEAD_IN_BROWSER})() !== {count}", polling=5)
            latencies.append(time.perf_counter() - t0)
        for page in pages:
            page.mouse.up()
        peak = max(peak, rss())
    for context in contexts:
        context.close()
    return latencies, peak


def first_render_s(browser: Browser, url: str, text: str, loads: int = 5) -> float:
    """Median of ``loads`` new pages (each in a new browser context, nothing cached): seconds from
    the request to ``text`` in a table cell on the screen."""
    times = []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        t0 = time.perf_counter()
        page.goto(url)
        page.locator(".tabulator-cell", has_text=text).first.wait_for()
        times.append(time.perf_counter() - t0)
        context.close()
    return statistics.median(times)


#: The floor under the recent-runs page: Panel's own server, the same template and a table of 50
#: runs from memory, with nothing of the DQM.
PANEL_FLOOR_APP = """
import pandas as pd
import panel as pn

pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)
runs = pd.DataFrame({"Run": [str(r) for r in range(200_000, 199_950, -1)], "Type": "physics",
                     "Status": "All Completed", "Events": 60_000, "Files": 1})
pn.template.BootstrapTemplate(
    title="floor", main=[pn.widgets.Tabulator(runs, pagination="local", page_size=25,
                                              show_index=False, disabled=True)]
).servable()
"""


def panel_floor_s(browser: Browser, env: dict[str, str]) -> float:
    """:func:`first_render_s` of :data:`PANEL_FLOOR_APP` under ``panel serve``."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dqm-bench-floor-") as tmp:
        script = Path(tmp) / "floor.py"
        script.write_text(PANEL_FLOOR_APP)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "panel"), "serve", str(script)]
            + ["--port", str(port), "--address", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(process, port, "panel serve")
            return first_render_s(browser, f"http://127.0.0.1:{port}/floor", "199999")
        finally:
            process.terminate()
            process.wait(timeout=20)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


def protocol_sessions(server: Server, run_id: int, n: int) -> dict[str, float]:
    """``n`` sessions speaking Bokeh's protocol from this process (``_bokehclient``), each
    moving its dead cut 5 times while the others do; the server on one core and the sessions on
    another, as a server and its shifters' machines would be. The latencies are those of the
    server and the network; drawing the new colours adds ``slider_browser_ms`` less
    ``slider_server_ms``."""
    import asyncio

    from _bokehclient import concurrent_cut_changes

    cores = sorted(os.sched_getaffinity(0))
    split = len(cores) >= 2
    if split:
        psutil.Process(server.process.pid).cpu_affinity([cores[0]])
        os.sched_setaffinity(0, cores[1:])
    try:
        # One round first, for what the server does once per session (see the browser rounds).
        asyncio.run(concurrent_cut_changes(server.address, run_id, n, FRACTIONS[:1]))
        latencies, cpu_s = asyncio.run(
            concurrent_cut_changes(server.address, run_id, n, FRACTIONS, cpu=server.cpu_s)
        )
    finally:
        if split:
            os.sched_setaffinity(0, cores)
            psutil.Process(server.process.pid).cpu_affinity(cores)
    return {
        "p50_update_s": percentile(latencies, 0.5),
        "p95_update_s": percentile(latencies, 0.95),
        # The server's CPU time during the moves, per update: what it costs to serve one.
        "server_cpu_per_update_ms": 1000 * cpu_s / len(latencies),
        "server_and_sessions_on_separate_cores": float(split),
    }


def sessions_on_processes(
    env: dict[str, str], run_id: int, n: int, processes: int
) -> dict[str, float]:
    """``n`` sessions speaking Bokeh's protocol (as :func:`protocol_sessions`) against one
    ``dqm serve --num-procs processes``, free to use both cores as the sessions are: each moves
    its dead cut 5 times while the others do. The latencies' p50 and p95, and the peak RSS of
    the server's processes together."""
    import asyncio
    import threading

    from _bokehclient import concurrent_cut_changes

    server = Server(env, "--num-procs", str(processes))
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, server.tree_rss_mb())

    try:
        asyncio.run(concurrent_cut_changes(server.address, run_id, n, FRACTIONS[:1]))
        time.sleep(12)  # the warm-up's sessions dropped
        baseline = server.tree_rss_mb()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies, _ = asyncio.run(concurrent_cut_changes(server.address, run_id, n, FRACTIONS))
        stop.set()
        sampler.join()
    finally:
        server.close()
    return {
        f"p50_update_{n}_sessions_{processes}_procs_s": percentile(latencies, 0.5),
        f"p95_update_{n}_sessions_{processes}_procs_s": percentile(latencies, 0.95),
        f"server_rss_baseline_{processes}_procs_mb": baseline,
        f"server_rss_peak_{n}_sessions_{processes}_procs_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument(
        "--many-sessions",
        type=int,
        default=50,
        help="sessions against one server of --processes processes (0: not measured)",
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--only-many-sessions",
        action="store_true",
        help="measure the sessions against several processes only",
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # demo.py is at the top of the checkout, which is not on the path of a script under bench/
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    import demo

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dqm-bench-dashboard-") as tmp:
        print("building the small demo installation…", flush=True)
        data = demo.build(Path(tmp) / "demo")
        add_runs(data.database_url, args.runs)
        run_id = demo.FAULTY_RUN

        if args.many_sessions:
            print(f"{args.many_sessions} sessions against {args.processes} processes…", flush=True)
            figures.update(
                sessions_on_processes(data.env, run_id, args.many_sessions, args.processes)
            )
            if args.only_many_sessions:
                print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
                return
        figures["slider_server_ms"] = slider_server_ms(data.database_url, run_id)
        figures["events_2m_render_ms"] = events_render_ms()
        figures["filter_change_server_ms"] = filter_change_server_ms(data.database_url)
        print(f"slider, server: {figures['slider_server_ms']:.1f} ms", flush=True)

        server = Server(data.env)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                # One session first: it loads what every session shares (the baseline).
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = open_pmt_page(context, server.url, run_id)
                times = [move_and_wait(page, FRACTIONS[k % len(FRACTIONS)]) for k in range(10)]
                figures["slider_browser_ms"] = 1000 * statistics.median(times)
                print(f"slider, browser: {figures['slider_browser_ms']:.0f} ms", flush=True)

                newest = str(100_000 + args.runs - 1)
                figures["runs_first_render_s"] = first_render_s(
                    browser, server.url + "/?page=runs", newest
                )
                figures["panel_floor_first_render_s"] = panel_floor_s(browser, data.env)
                figures["ratio_runs_first_render_to_panel_floor"] = (
                    figures["runs_first_render_s"] / figures["panel_floor_first_render_s"]
                )
                page = context.new_page()
                page.goto(server.url + "/?page=runs")
                page.get_by_text(newest, exact=True).first.wait_for()
                search = page.get_by_placeholder("e.g. 10004")
                times = []
                for k in range(5):
                    target = str(100_000 + 7 * k + 3)
                    search.fill(target)
                    t0 = time.perf_counter()
                    search.press("Enter")
                    page.locator(".tabulator-cell", has_text=target).first.wait_for()
                    times.append(time.perf_counter() - t0)
                figures["filter_change_browser_ms"] = 1000 * statistics.median(times)
                context.close()

                # A first round of sessions, opened and closed, warms what sessions share
                # (caches, thread pools, the allocator's arenas): the baseline is after it.
                concurrent_round(browser, server.url, run_id, args.sessions, rounds=1)
                time.sleep(12)  # closed sessions are dropped after 5 s, checked every 2.5 s
                figures["server_rss_baseline_mb"] = server.rss_mb()
                latencies, peak = concurrent_round(
                    browser, server.url, run_id, args.sessions, rounds=5, rss=server.rss_mb
                )
                figures["server_rss_peak_mb"] = peak
                browser.close()
            latencies.sort()
            figures["p95_update_browsers_here_s"] = percentile(latencies, 0.95)
            time.sleep(12)
            figures["server_rss_after_mb"] = server.rss_mb()
            figures["rss_after_to_baseline"] = (
                figures["server_rss_after_mb"] / figures["server_rss_baseline_mb"]
            )
            figures.update(protocol_sessions(server, run_id, args.sessions))
        finally:
            server.close()

    print(
        f"recent runs with {args.runs:,} runs: first render {figures['runs_first_render_s']:.2f} s"
    )
    print(
        f"{args.sessions} sessions: p95 update {figures['p95_update_s']:.2f} s "
        f"({figures['p95_update_browsers_here_s']:.2f} s with {args.sessions} Chromium pages "
        "drawing on this machine's cores beside the server)"
    )
    print(
        f"server memory: {figures['server_rss_baseline_mb']:.0f} MB before the sessions, "
        f"{figures['server_rss_peak_mb']:.0f} MB with {args.sessions}, "
        f"{figures['server_rss_after_mb']:.0f} MB after they closed"
    )
    print(json.dumps({k: round(v, 3) for k, v in figures.items()} | {"runs": args.runs}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
