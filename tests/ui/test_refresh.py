"""The recent-runs page refreshes itself without losing the reader's place: the sorting, the
page of the table, the filters and the scroll position stay as they were while new data come
in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from uihelpers import copy_installation, dashboard

pytestmark = pytest.mark.slow

N_RUNS = 80  # the 50 most recent runs shown are two pages of 25
FIRST = 30_000


@pytest.fixture
def busy_installation(demo_data, tmp_path: Path) -> tuple[dict[str, str], str]:
    """A copy of the demo installation with ``N_RUNS`` more finished runs; its environment and
    database URL."""
    env, url = copy_installation(demo_data.env, tmp_path / "data")
    from dqm.db.models import Run, RunStatus

    start = dt.datetime(2026, 1, 1)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Run),
            [
                {
                    "run_id": FIRST + k,
                    "run_type": "physics",
                    "detector": "CD",
                    "start_time": start + dt.timedelta(hours=k),
                    "end_time": start + dt.timedelta(hours=k, minutes=50),
                    "status": RunStatus.ALL_COMPLETED,
                    "n_events": 1000 + k,
                    "n_files": 1,
                    "sampling_fraction": 1.0,
                }
                for k in range(N_RUNS)
            ],
        )
    engine.dispose()
    return env, url


@pytest.fixture
def server(busy_installation) -> Iterator[str]:
    env, _ = busy_installation
    with dashboard(env, "--refresh", "1", name="refresh-server") as (url, _log):
        yield url


def _place(page) -> dict[str, object]:
    """Where the reader is: the sort of the Run column, the page shown, the table's first run,
    and the table's top on the screen (which moves when the page scrolls)."""
    header = page.locator('.tabulator-col[tabulator-field="Run"]').first
    return {
        "sort": header.get_attribute("aria-sort"),
        "page": page.locator(".tabulator-page.active").first.inner_text(),
        "first_run": page.locator('.tabulator-cell[tabulator-field="Run"]').first.inner_text(),
        "top": round(page.locator(".tabulator").first.bounding_box()["y"]),
    }


def test_refresh_keeps_sorting_page_filters_and_scroll(
    server: str, page, busy_installation
) -> None:
    _, url = busy_installation
    page.set_viewport_size({"width": 1400, "height": 700})
    page.goto(server + "/?page=runs")
    page.locator(".tabulator-cell", has_text=str(FIRST + N_RUNS - 1)).first.wait_for()

    # Filter on a run type, sort by run number (ascending), turn to page 2, scroll down.
    from playwright.sync_api import expect

    header = page.locator('.tabulator-col[tabulator-field="Run"]').first
    header.locator(".tabulator-col-title").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    page.locator('.tabulator-page[data-page="2"]').first.click()
    page.locator(".tabulator-page.active", has_text="2").first.wait_for()
    page.mouse.move(700, 400)
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(300)
    before = _place(page)
    assert before["sort"] == "ascending" and before["page"] == "2"

    # New data: a run shown on page 2 fails.
    shown = int(str(before["first_run"]).replace(",", ""))
    _change(
        url,
        lambda Run, RunStatus: (
            sa.update(Run).where(Run.run_id == shown).values(status=RunStatus.FAILED)
        ),
    )
    page.locator(".tabulator-row", has_text=str(shown)).filter(has_text="Failed").first.wait_for()
    page.wait_for_timeout(1500)  # one more refresh, with nothing new
    assert _place(page) == before

    # A new run ends: the 50 most recent runs move up by one, and page 2 shows it.
    new = FIRST + N_RUNS
    _change(
        url,
        lambda Run, RunStatus: sa.insert(Run).values(
            run_id=new,
            run_type="physics",
            detector="CD",
            status=RunStatus.ALL_COMPLETED,
            start_time=dt.datetime(2026, 6, 1),
            end_time=dt.datetime(2026, 6, 1, 1),
            n_events=5,
            n_files=1,
            sampling_fraction=1.0,
        ),
    )
    page.locator(".tabulator-cell", has_text=str(new)).first.wait_for()
    page.wait_for_timeout(1500)
    after = _place(page)
    assert after["first_run"] != before["first_run"]  # the oldest run left the table
    assert {k: after[k] for k in ("sort", "page", "top")} == {
        k: before[k] for k in ("sort", "page", "top")
    }


def _change(url: str, statement) -> None:
    """Run ``statement(Run, RunStatus)`` on the database, as the job server would."""
    from dqm.db.models import Run, RunStatus

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(statement(Run, RunStatus))
    engine.dispose()
