"""The event display's speed in the browser: from a click on Next to the next event drawn.

    .venv/bin/python bench/event_display.py [--events 20] [--clicks 20]

The event display (``app.eventsview.EventDisplay``) is served alone by Panel's server in this
process, on 20 synthetic kept events of realistic size (1,500 to 15,000 fired PMTs, with the charge
and first-hit time of light from a vertex in the liquid scintillator and dark-noise hits spread
over the readout window), and opened in the system Chromium through Playwright. Next is clicked 20
times (after the last event comes the first, so every click shows a new event), and each time the
browser itself measures the time from the click to the new event on the screen:

- the click's time is the ``timeStamp`` of the click event, caught at the document before the
  button sees it;
- before the click, a loop is armed in the page that runs once per animation frame and checks
  that the browser's copy of the map's data source (in ``Bokeh.documents``) holds the new
  event's fired PMTs (as many as that event has, each event having a different number, and its
  first PMT id) and that the caption on the page reads ``Event k of 20``;
- once both hold, it waits for one more animation frame, in which BokehJS has drawn the new data
  (it draws in the frame after a change), and records the time.

So the figure covers the whole path: the click to the server over the websocket, the state's new
columns, their serialisation, the patch back, BokehJS applying it, and the canvas drawn. Each
frame is about 16 ms apart, which bounds the resolution. The last line is one JSON object:
``next_event_p50_ms`` and ``next_event_p95_ms`` (median and 95th percentile over the clicks),
``next_event_max_ms`` and ``events``.

Needs /usr/bin/chromium (Debian's package) and the playwright Python package (never
``playwright install``: the system Chromium is used).
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _benchpath  # noqa: F401  (first: bench/ leaves sys.path)
import numpy as np
from _benchpath import print_figures

from dqm import detector
from dqm.keptevents import KeptEvent

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
#: The target: the next event on the screen within this time.
TARGET_MS = 300.0

#: Functions installed in the page: the click's time, and a loop per animation frame that records
#: when the expected event is both in Bokeh's copy of the data and in the caption, one frame later.
PAGE_HELPERS = """() => {
  window.__bench = {clickAt: null, doneAt: null, armed: null};
  document.addEventListener("click", (e) => { window.__bench.clickAt = e.timeStamp; }, true);
  const texts = (root, out) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) texts(el.shadowRoot, out);
      if (el.childElementCount === 0 && el.textContent) out.push(el.textContent);
    }
    return out;
  };
  window.__benchShown = (n, first, caption) => {
    let data = null;
    for (const doc of Bokeh.documents)
      for (const m of doc.all_models)
        if (m.data && m.data.first_hit_ns !== undefined) data = m.data;
    if (data === null || data.pmt_id.length !== n || data.pmt_id[0] !== first) return false;
    return texts(document, []).some((t) => t.includes(caption));
  };
  window.__benchArm = (n, first, caption) => {
    const bench = window.__bench;
    bench.clickAt = null;
    bench.doneAt = null;
    const token = {};
    bench.armed = token;
    const check = () => {
      if (bench.armed !== token) return;
      if (bench.clickAt !== null && window.__benchShown(n, first, caption)) {
        requestAnimationFrame(() => { bench.doneAt = performance.now(); });
      } else {
        requestAnimationFrame(check);
      }
    };
    requestAnimationFrame(check);
  };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def synthetic_events(n_events: int, seed: int = 1) -> list[KeptEvent]:
    """``n_events`` events, of 1,500 to 15,000 fired PMTs (each a different number): light from a
    vertex in the liquid scintillator on the PMTs facing it, and dark-noise hits."""
    rng = np.random.default_rng(seed)
    table = detector.load_pmts()
    positions = table[["x_mm", "y_mm", "z_mm"]].to_numpy()
    sizes = np.linspace(1_500, 15_000, n_events).astype(int)
    rng.shuffle(sizes)
    events = []
    for entry, size in enumerate(sizes.tolist()):
        direction = rng.normal(size=3)
        vertex = (
            direction / np.linalg.norm(direction) * detector.LS_RADIUS_MM * rng.random() ** (1 / 3)
        )
        distance = np.linalg.norm(positions - vertex, axis=1)
        # the nearer PMTs see more light: fired with a weight falling as the distance squared
        weight = 1.0 / distance**2
        n_dark = size // 8
        lit = rng.choice(detector.N_PMTS, size - n_dark, replace=False, p=weight / weight.sum())
        dark = rng.choice(np.setdiff1d(np.arange(detector.N_PMTS), lit), n_dark, replace=False)
        expected = 40.0 * size / 15_000 * (weight[lit] / weight[lit].mean())
        charge = np.concatenate(
            (rng.gamma(2.0, expected / 2.0) + 0.3, rng.gamma(4.0, 0.25, n_dark))
        )
        arrival = (
            detector.TRIGGER_POSITION_NS + distance[lit] / detector.LS_GROUP_VELOCITY_MM_PER_NS
        )
        first_hit = np.concatenate(
            (
                arrival
                + rng.exponential(detector.SCINT_TAU_FAST_NS / 4, lit.size)
                + rng.normal(0.0, 3.0, lit.size),
                rng.uniform(0.0, detector.READOUT_WINDOW_NS, n_dark),
            )
        )
        pmt = np.concatenate((lit, dark))
        order = np.argsort(pmt)
        energy = size / 1_500 + rng.random()
        events.append(
            KeptEvent(
                entry=entry,
                trigger_time_s=0.37 + 0.011 * entry,
                energy_mev=energy,
                vertex_mm=(float(vertex[0]), float(vertex[1]), float(vertex[2])),
                n_hits=int(size * 1.3),
                pmt_id=pmt[order],
                charge_pe=charge[order],
                first_hit_ns=first_hit[order],
                reasons=("first",) if entry < 10 else ("highest",),
                seq=1,
            )
        )
    return events


def serve(events: list[KeptEvent], port: int) -> Any:
    """The event display alone under Panel's server, in a thread of this process."""
    import panel as pn

    from app.events import EventsState
    from app.eventsview import EventDisplay

    def page() -> Any:
        state = EventsState(loader=lambda run_id: events, run_id=1)
        return pn.Column(EventDisplay(state=state), sizing_mode="stretch_width")

    return pn.serve(
        {"events": page},
        port=port,
        address="127.0.0.1",
        websocket_origin=f"127.0.0.1:{port}",
        show=False,
        threaded=True,
        verbose=False,
    )


def caption(index: int, n_events: int) -> str:
    return f"Event {index + 1} of {n_events} ·"


def arm(page: Page, event: KeptEvent, index: int, n_events: int) -> None:
    page.evaluate(
        "([n, first, caption]) => window.__benchArm(n, first, caption)",
        [event.n_pmts, int(event.pmt_id[0]), caption(index, n_events)],
    )


def next_event_ms(page: Page, events: list[KeptEvent], index: int) -> float:
    """Click Next; the milliseconds from the click to the event ``index`` drawn."""
    arm(page, events[index], index, len(events))
    page.get_by_role("button", name="Next ▶").click()
    page.wait_for_function("() => window.__bench.doneAt !== null", polling="raf")
    elapsed: float = page.evaluate("() => window.__bench.doneAt - window.__bench.clickAt")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20, help="kept events served")
    parser.add_argument("--clicks", type=int, default=20, help="clicks on Next timed")
    parser.add_argument("--screenshot", type=Path, help="a PNG of the page after the clicks")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    events = synthetic_events(args.events)
    sizes = [e.n_pmts for e in events]
    print(f"{len(events)} events of {min(sizes):,} to {max(sizes):,} fired PMTs", flush=True)
    port = free_port()
    server = serve(events, port)
    times: list[float] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/events")
            page.wait_for_function("() => window.Bokeh !== undefined && Bokeh.documents.length > 0")
            page.evaluate(PAGE_HELPERS)
            page.wait_for_function(
                "([n, first, caption]) => window.__benchShown(n, first, caption)",
                arg=[events[0].n_pmts, int(events[0].pmt_id[0]), caption(0, len(events))],
            )
            print(f"page with the first event: {time.perf_counter() - t0:.2f} s", flush=True)
            for click in range(args.clicks):
                index = (click + 1) % len(events)
                ms = next_event_ms(page, events, index)
                times.append(ms)
                print(
                    f"next {click + 1:2d}/{args.clicks}: event {index + 1:2d}, "
                    f"{events[index].n_pmts:6,} PMTs: {ms:6.1f} ms",
                    flush=True,
                )
            if args.screenshot is not None:
                page.screenshot(path=str(args.screenshot), full_page=True)
            if errors:
                raise SystemExit(f"the page reported errors: {errors}")
            context.close()
            browser.close()
    finally:
        server.stop()
    p50, p95 = (float(v) for v in np.percentile(times, [50, 95]))
    within = sum(t <= TARGET_MS for t in times)
    print(f"{within} of {len(times)} clicks within {TARGET_MS:.0f} ms", flush=True)
    print_figures(
        {
            "next_event_p50_ms": round(p50, 1),
            "next_event_p95_ms": round(p95, 1),
            "next_event_max_ms": round(max(times), 1),
            "events": len(times),
        }
    )


if __name__ == "__main__":
    main()
