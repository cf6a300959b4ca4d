"""Logging in to write (cut defaults, run comments, job retries, each recorded with who and when),
anonymous reading, and sessions that are dropped from the server's memory once closed."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from uihelpers import dashboard

import demo
from dqm.db import queries
from dqm.db.session import transaction

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(demo_data, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    credentials = tmp_path_factory.mktemp("login") / "users.json"
    credentials.write_text(json.dumps({"expert": {"password": PASSWORD, "role": "expert"}}))
    credentials.chmod(0o600)
    options = ("--credentials", str(credentials), "--refresh", "0", "--session-lifetime", "1")
    with dashboard(demo_data.env, *options, name="login-server") as served:
        yield served


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert "Traceback" not in page.content()


def test_anonymous_visitors_read_everything_and_change_nothing(server, page) -> None:
    url, _log = server
    _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
    page.get_by_text("Log in").first.wait_for()
    page.get_by_text(re.compile(r"Dead [\d,]+ ·")).first.wait_for()
    assert page.get_by_text("Save these cuts").count() == 0
    _open(page, f"{url}/?page=jobs")
    page.locator(".tabulator-cell", has_text="truncated").first.wait_for()
    assert page.get_by_text("retry", exact=False).count() == 0


def test_an_expert_logs_in_and_every_change_records_who_and_when(server, page, demo_data) -> None:
    url, _log = server
    _open(page, f"{url}/login")
    page.fill("#username", "expert")
    page.fill("#password", "wrong")
    page.click("#login-submit, button[type=submit], input[type=submit]")
    page.get_by_text("Invalid username or password").first.wait_for()
    page.fill("#username", "expert")
    page.fill("#password", PASSWORD)
    page.click("#login-submit, button[type=submit], input[type=submit]")
    page.wait_for_load_state("networkidle")

    _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
    page.get_by_text("Logged in as").first.wait_for()
    page.get_by_text("Save these cuts as the default of physics runs").first.click()
    page.get_by_text("Saved as the default cuts of physics runs.").first.wait_for()

    _open(page, f"{url}/?run={demo.FAULTY_RUN}&tab=base")
    page.locator("textarea").first.fill("PMT HV of sector 4 off from 10:42")
    page.get_by_text("Save comment").first.click()
    page.get_by_text("Comment saved.").first.wait_for()

    _open(page, f"{url}/?page=jobs")
    page.locator(".tabulator-cell", has_text="retry").first.click()
    page.get_by_text(re.compile(r"Job \d+ is back to TODO")).first.wait_for()

    with transaction(demo_data.database_url) as session:
        changes = queries.changes(session)
        assert {(c.user, c.action) for c in changes} == {
            ("expert", "cut_defaults"),
            ("expert", "run_comment"),
            ("expert", "retry_job"),
        }
        assert queries.get_run(session, run_id=demo.FAULTY_RUN).comment.startswith(
            "PMT HV of sector 4"
        )
        assert queries.cut_defaults(session, run_type="physics").saved_by == "expert"


def test_closed_sessions_leave_the_server(server, browser) -> None:
    url, log = server
    contexts = [browser.new_context() for _ in range(3)]
    for context in contexts:
        page = context.new_page()
        page.goto(f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
        page.get_by_text(re.compile(r"Dead [\d,]+ ·")).first.wait_for()
    for context in contexts:
        context.close()
    time.sleep(4)  # dropped one second after their browser went, checked every second
    context = browser.new_context()
    context.new_page().goto(url + "/")
    context.close()
    opened = re.findall(r"a session opened: (\d+) dashboard sessions in memory", log.read_text())
    assert int(opened[-1]) == 1, opened
