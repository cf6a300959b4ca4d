"""The Trends page in a real browser: a trend opened from its URL, its hover, a click that opens
the run, and a new result that appears on the next refresh without the plot being drawn again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from analysesdata import FIRST_RUN, N_RUNS, add_run, fill, save_result
from uihelpers import copy_installation, dashboard

pytestmark = pytest.mark.slow

LAST = FIRST_RUN + N_RUNS - 1

#: The runs of the trend's plot, as the browser holds them (null before the plot arrived).
RUNS_IN_BROWSER = """() => {
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.outside && m.data.run_id) return Array.from(m.data.run_id);
  return null;
}"""

#: Marks the plot's data source and view in the browser, to tell later whether they were replaced.
MARK = """() => {
  function* walk(v) { yield v; for (const c of (v.child_views ?? [])) yield* walk(c); }
  for (const root of Object.values(Bokeh.index))
    for (const v of walk(root))
      if (v.renderer_views) v.el.dataset.marked = "yes";
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.outside) m.marked = true;
}"""

#: Whether the plot's data source and view are those marked by MARK.
STILL_MARKED = """() => {
  function* walk(v) { yield v; for (const c of (v.child_views ?? [])) yield* walk(c); }
  let views = 0, sources = 0;
  for (const root of Object.values(Bokeh.index))
    for (const v of walk(root))
      if (v.renderer_views && v.el.dataset.marked === "yes") views++;
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.data && m.data.outside && m.marked === true) sources++;
  return [views, sources];
}"""

#: Where a run's point is on the page (its scatter glyph's screen coordinates).
POINT = """(run) => {
  function* walk(v) { yield v; for (const c of (v.child_views ?? [])) yield* walk(c); }
  for (const root of Object.values(Bokeh.index))
    for (const v of walk(root)) {
      if (!v.renderer_views) continue;
      for (const rv of v.renderer_views.values()) {
        const data = rv.model.data_source && rv.model.data_source.data;
        if (!data || !data.outside || rv.model.glyph.constructor.__name__ !== "Scatter") continue;
        const i = Array.from(data.run_id).indexOf(run);
        if (i < 0 || !rv.glyph.sx) return null;
        const box = v.el.getBoundingClientRect();
        return [box.left + rv.glyph.sx[i], box.top + rv.glyph.sy[i]];
      }
    }
  return null;
}"""


@pytest.fixture(scope="module")
def installation(demo_data, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """A copy of the demo installation with the analysis results of ``analysesdata``, shared by
    the tests of this module (each adds only what the others do not look at)."""
    env, url = copy_installation(demo_data.env, tmp_path_factory.mktemp("trends") / "data")
    fill(url)
    return env, url


@pytest.fixture(scope="module")
def server(installation) -> Iterator[str]:
    env, _ = installation
    with dashboard(env, "--refresh", "1", name="trends-server") as (url, _log):
        yield url


def test_a_trend_from_its_url_hovers_opens_runs_and_grows(server: str, page, installation) -> None:
    _, url = installation
    page.goto(f"{server}/?page=trends&analysis=energy_scale&version=1&variables=peak_mev")
    page.wait_for_function(f"() => ({RUNS_IN_BROWSER})()?.length === {N_RUNS}")
    assert page.evaluate(RUNS_IN_BROWSER) == list(range(FIRST_RUN, LAST + 1))
    page.get_by_text(f"{N_RUNS} runs, the last {LAST}").first.wait_for()

    # The hover says the run, its value ± error and unit, and when it started.
    page.wait_for_function(f"() => ({POINT})(107) !== null")
    x, y = page.evaluate(POINT, 107)
    page.mouse.move(x, y)
    page.get_by_text("2.5 ± 0.01 MeV").first.wait_for()

    # A new result appears on the next refresh, streamed into the plot shown.
    page.evaluate(MARK)
    add_run(url, LAST + 1)
    save_result(url, LAST + 1)
    page.wait_for_function(f"() => ({RUNS_IN_BROWSER})()?.length === {N_RUNS + 1}")
    assert page.evaluate(RUNS_IN_BROWSER)[-2:] == [LAST, LAST + 1]
    assert page.evaluate(STILL_MARKED) == [1, 1]  # the same plot and source: not drawn again

    # A click on a point opens its run; back returns to the trend.
    x, y = page.evaluate(POINT, 113)
    page.mouse.click(x, y)
    page.get_by_text("Run 113").first.wait_for()
    assert "page=run" in page.url and "run=113" in page.url and "analysis=" not in page.url
    page.go_back()
    page.wait_for_function("() => location.search.includes('page=trends')")
    assert "variables=peak_mev" in page.url


def test_bad_trend_parameters_give_a_message(server: str, page) -> None:
    page.goto(f"{server}/?page=trends&analysis=nothing&x=sideways")
    page.get_by_text("There is no x axis 'sideways'").first.wait_for()
    page.get_by_text("There is no analysis 'nothing'").first.wait_for()


def test_the_run_page_shows_analyses_and_tags(server: str, page) -> None:
    page.goto(f"{server}/?run={LAST}&tab=analyses")
    page.get_by_text("energy_scale v1").first.wait_for()
    page.get_by_text("the fit of the peak did not converge.").first.wait_for()
    page.get_by_text("Traceback").first.click()
    page.get_by_text("RuntimeError").first.wait_for()
    page.goto(f"{server}/?run=106")
    page.locator(".run-tag", has_text="messy").first.wait_for()


def test_the_jobs_page_shows_backfills(server: str, page, installation) -> None:
    from dqm.db import queries
    from dqm.db.session import transaction

    _, url = installation
    with transaction(url) as s:
        backfill = queries.add_backfill(
            s, analysis="energy_scale", version=2, since_run=100, until_run=101, n_runs=2
        )
        for run_id, state in ((100, "DONE"), (101, "TODO")):
            job = queries.add_job(
                s,
                kind="analysis",
                run_id=run_id,
                analysis="energy_scale",
                analysis_version=2,
                backfill_id=backfill.id,
            )
            job.state = state
    page.goto(f"{server}/?page=jobs")
    page.get_by_text("Backfills of analyses").first.wait_for()
    page.locator(".tabulator-cell", has_text="100–101 (2 runs)").first.wait_for()
