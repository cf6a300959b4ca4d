"""The dashboard in a real browser: `dqm serve` on the small demo installation, driven by Playwright
through the system Chromium (/usr/bin/chromium). Screenshots of every page are kept under
test-artifacts/ui/ of the checkout."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from uihelpers import ARTIFACTS, dashboard, drag_first_slider

#: The Bokeh model that holds the PMT map's per-PMT class, read in the browser.
DEAD_IN_BROWSER = """() => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.pmt_class) return Array.from(m.data.pmt_class).filter(c => c == 0).length;
  return null;
}"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(demo_data) -> Iterator[str]:
    """`dqm serve` on the demo data, refreshing every 2 s; yields its URL."""
    with dashboard(demo_data.env, "--refresh", "2") as (url, _log):
        yield url


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert "Traceback" not in page.content()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/?page=runs",
        "/?page=jobs",
        "/?page=calibrations",
        "/?run=20002&tab=base",
        "/?run=20002&tab=calib",
        "/?run=20002&tab=rec",
        "/?run=20002&tab=pmt",
        "/?run=20003",  # still taking data: nothing processed yet
    ],
)
def test_every_page_loads_without_errors(server: str, page, path: str) -> None:
    _open(page, server + path)
    page.get_by_text("DQM").first.wait_for()
    if "tab=calib" in path or "tab=rec" in path:
        page.locator(".bk-Canvas, canvas").first.wait_for()
    if "tab=rec" in path:  # the event-level plots, rasterised by Datashader on the server
        page.get_by_text(re.compile(r"Events \([\d,]+, drawn by Datashader")).first.wait_for()
    if path == "/":  # the shift overview, its tiles read
        page.locator(".tile-last_runs .last-run", has_text="20002").first.wait_for()
        assert page.locator(".tile-error").count() == 0
    if path == "/?page=jobs":  # the demo's jobs: durations per stage
        page.get_by_text("Durations per stage").first.wait_for()
        page.locator(".tabulator-cell", has_text="process_file").first.wait_for()


def test_clicking_a_run_opens_its_page(server: str, page) -> None:
    _open(page, server + "/?page=runs")
    page.get_by_text("20002", exact=True).first.click()
    page.get_by_text("Run 20002").first.wait_for()
    assert "run=20002" in page.url
    page.go_back()
    page.wait_for_function("() => !location.search.includes('run=20002')")


def test_moving_the_dead_cut_changes_the_count_and_the_colours(
    server: str, page, demo_data
) -> None:
    _open(page, server + "/?run=20002&tab=pmt")
    counts = page.get_by_text(re.compile(r"Dead [\d,]+ ·")).first
    counts.wait_for()
    assert re.search(r"Dead (\d+)", counts.inner_text()).group(1) == str(len(demo_data.dead))
    assert page.evaluate(DEAD_IN_BROWSER) == len(demo_data.dead)

    drag_first_slider(page, 0.5)
    page.wait_for_function(f"() => ({DEAD_IN_BROWSER})() > 10000")
    page.get_by_text(re.compile(r"Dead 1\d,\d{3} ·")).first.wait_for()


def test_injected_dead_and_hot_pmts_are_flagged(server: str, page, demo_data) -> None:
    _open(page, server + "/?run=20002&tab=pmt")
    page.get_by_text("Flagged PMTs").first.wait_for()
    with page.expect_download() as download:
        page.get_by_text("Download flagged PMTs (CSV)").first.click()
    path = download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    flagged = {c: {int(r["pmt_id"]) for r in rows if r["class"] == c} for c in ("dead", "hot")}
    assert flagged["dead"] == demo_data.dead
    assert flagged["hot"] == demo_data.hot
    # and the table on the page shows them
    first_dead = str(min(demo_data.dead))
    page.get_by_text(first_dead, exact=True).first.wait_for()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/?run=999999", "There is no run 999999"),
        ("/?run=abc", "'abc' is not a run number"),
        ("/?run=20002&tab=nonsense", "There is no tab 'nonsense'"),
        ("/?page=nowhere", "There is no page 'nowhere'"),
    ],
)
def test_bad_urls_give_a_friendly_message(server: str, page, path: str, message: str) -> None:
    _open(page, server + path)
    page.get_by_text(message).first.wait_for()
    assert "Traceback" not in page.content()
    assert os.path.exists(ARTIFACTS)


def test_a_run_report_opens_offline_with_every_figure(demo_data, browser, tmp_path) -> None:
    from dqm.db.session import transaction
    from dqm.report import run_report

    with transaction(demo_data.database_url) as session:
        report = tmp_path / "run20002.html"
        report.write_text(run_report(session, run_id=20002), encoding="utf-8")
    context = browser.new_context()
    context.set_offline(True)  # nothing may come from the network
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(report.as_uri())
    page.get_by_text("Run 20002").first.wait_for()
    sizes = page.evaluate(
        "() => Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
    )
    context.close()
    assert len(sizes) >= 15 and all(done and width > 100 for done, width in sizes)
    assert not failed
