"""Bad input at the entry points of the shift's tools — the JSON API, the command line, the
dashboard's writes (the data access and the state classes behind the forms) and its URL
parameters — is answered with one sentence, and changes nothing.

One installation for the whole module: the judged runs 101..106 (All Completed, checks, an alarm
on 105), 107 still taking data, 103 signed off, 101 certified, a FAILED job on 105 and on the
certified 101, a DONE job on 105 and a comment on 104. Every case sends one bad input, reads the
answer (the HTTP body, standard error, the exception, the page's notice or message), checks that
it is one sentence — not empty, one line, ending with a full stop — holding the words expected, and
that every table of the database holds what it held before, row for row.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from apiserver import Served
from click.testing import CliRunner
from judgedruns import START, fill_judged_runs
from notifyservers import free_port
from pmthistory import fill_pmt_history
from sqlalchemy import select

from app.api import Api
from app.events import EventsState
from app.main import DQMApp
from app.source import Source
from app.state import JobsState, PmtHistoryState, RecentRuns, RunState
from dqm.cli import EXIT_BAD_INPUT, cli
from dqm.db import migrate, queries
from dqm.db.models import Base
from dqm.db.session import dispose_engines, transaction
from dqm.errors import DQMError, InvalidValueError
from dqm.keptevents import KeptEvent
from dqm.states import JobState
from dqm.users import Actor, Role

TOKEN = "a token of sixteen characters or more"
HUGE = "99999999999999999999"  # a whole number beyond 64 bits
MEGABYTE = "x" * 1_000_000
ANONYMOUS = Actor.anonymous()
VIEWER = Actor("vic", Role.VIEWER)
SHIFTER = Actor("sam", Role.SHIFTER)
EXPERT = Actor("eve", Role.EXPERT)

#: What click adds after a usage error's sentence: where to read more.
HELP_HINT = re.compile(r" \(see '[^']+ --help'\)$")


class Shift:
    """The installation the bad input is sent to: its database, the dashboard's data access, the
    JSON API on a port of its own (with a token, no rate limit) and the command line."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.source = Source(url)
        self.api = Served(Api(self.source, token=TOKEN, per_minute=0))
        with transaction(url) as s:
            failed = queries.add_job(s, kind="process_file", run_id=105)
            failed.state, failed.error = JobState.FAILED, "105.0.root is truncated"
            done = queries.add_job(s, kind="merge_run", run_id=105)
            done.state = JobState.DONE
            for run_id, actions in ((103, ["sign_off"]), (101, ["sign_off", "certify"])):
                for action in actions:
                    queries.decide(
                        s, run_id=run_id, action=action, user="setup", role="admin", comment="ok"
                    )
            certified = queries.add_job(s, kind="process_file", run_id=101)
            certified.state, certified.error = JobState.FAILED, "101.0.root is truncated"
            comment = queries.add_comment(
                s, run_id=104, text="charge spectrum odd", user="sam", role="shifter"
            )
            s.flush()
            # the rows the cases name
            self.ids = {
                "failed_job": failed.id,
                "done_job": done.id,
                "certified_job": certified.id,
                "comment_on_104": comment.id,
                "alarm": queries.list_alarms(s, run_id=105)[0].id,
            }
        self.credentials = tmp / "users.json"
        self.credentials.write_text(json.dumps({"ann": {"password": "pw", "role": "superuser"}}))
        self.credentials.chmod(0o600)

    def snapshot(self) -> dict[str, list[str]]:
        """Every table, row for row."""
        with transaction(self.url) as s:
            return {
                table.name: sorted(repr(tuple(row)) for row in s.execute(select(table)))
                for table in Base.metadata.sorted_tables
            }

    def dqm(self, *args: str) -> str:
        """Run ``dqm ARGS`` (``{tmp}``, ``{port}`` and the names of :attr:`ids` in an argument
        are replaced by their values); it must refuse: exit code 2 and nothing on standard
        output. Returns what it wrote on standard error."""
        values = {"tmp": self.tmp, "port": free_port(), "credentials": self.credentials, **self.ids}
        done = CliRunner().invoke(
            cli,
            [a.format(**values) if "{" in a else a for a in args],
            env={"DQM_DATABASE_URL": self.url, "DQM_CONFIG": None, "USER": "ana"},
            prog_name="dqm",
        )
        assert done.exit_code == EXIT_BAD_INPUT, (done.exit_code, done.output, done.exception)
        assert done.stdout == "", done.stdout
        return done.stderr.strip().removeprefix("error: ")

    def url_message(self, **arguments: Any) -> str:
        """The message the dashboard shows when opened with these URL parameters."""
        app = DQMApp(source=self.source, refresh_s=0, **arguments)
        assert app._message.visible, "no message"
        return str(app._message.object)


def api_get(served: Served, path: str, token: str | None) -> tuple[int, str, str]:
    """GET ``path`` of an API: the status, the content type and the body (whatever it is)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(served.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shift]:
    tmp = tmp_path_factory.mktemp("shift-bad-input")
    url = f"sqlite:///{tmp / 'dqm.sqlite'}"
    migrate.upgrade(url, "head")
    fill_pmt_history(fill_judged_runs(url))
    with transaction(url) as s:
        queries.add_run(s, run_id=107, run_type="physics", start_time=START, status="Data Taking")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)  # no stray dqm.toml for the command line
        installation = Shift(url, tmp)
        yield installation
        installation.api.close()
    dispose_engines()


def one_sentence(text: str) -> str:
    """``text`` as one sentence: not empty, one line, a full stop at its end (a usage error of
    the command line adds where to read more after it)."""
    sentence = HELP_HINT.sub("", text.strip())
    assert sentence, "the answer is empty"
    assert "\n" not in sentence and "Traceback" not in sentence, text[:500]
    assert sentence.endswith("."), text[:500]
    return sentence


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """The tables whose rows differ between two snapshots."""
    return sorted(table for table in before if before[table] != after[table])


def answered_and_unchanged(shift: Shift, ask: Callable[[], str], words: str) -> None:
    """Make the bad request ``ask``: its answer is one sentence holding ``words``, and every
    table is as it was."""
    before = shift.snapshot()
    sentence = one_sentence(ask())
    assert words in sentence, sentence
    changed = changed_tables(before, shift.snapshot())
    assert not changed, f"{sentence!r}, yet {changed} changed"


def refusal(write: Callable[[], object]) -> str:
    """The sentence of the DQMError with which ``write`` is refused."""
    with pytest.raises(DQMError) as refused:
        write()
    return str(refused.value)


# === The JSON API ================================================================================
# (path, token sent, status, words of the sentence)

API_CASES = [
    pytest.param(
        "/api/runs?limit=many", TOKEN, 400, "limit must be a whole number", id="limit-nan"
    ),
    pytest.param("/api/runs?limit=-5", TOKEN, 400, "limit must be at least 1", id="limit-negative"),
    pytest.param("/api/runs?limit=0", TOKEN, 400, "limit must be at least 1", id="limit-zero"),
    pytest.param("/api/runs?limit=1.5", TOKEN, 400, "not '1.5'", id="limit-fraction"),
    pytest.param(f"/api/runs?limit={HUGE}", TOKEN, 400, "at most 1000", id="limit-huge"),
    pytest.param("/api/runs?after=abc", TOKEN, 400, "after must be a whole number", id="after-nan"),
    pytest.param("/api/runs?after=-1", TOKEN, 400, "after must be at least 0", id="after-negative"),
    pytest.param(f"/api/runs?after={HUGE}", TOKEN, 400, "after", id="after-huge"),
    pytest.param(
        "/api/runs?colour=red", TOKEN, 400, "unknown parameter 'colour'", id="param-unknown"
    ),
    pytest.param("/api/runs?limit=1&limit=2", TOKEN, 400, "given 2 times", id="param-twice"),
    pytest.param(
        "/api/runs?type=cosmics", TOKEN, 400, "'cosmics' is not a run type", id="type-bad"
    ),
    pytest.param("/api/runs?status=Sleeping", TOKEN, 400, "'Sleeping'", id="status-bad"),
    pytest.param("/api/runs/999", TOKEN, 404, "there is no run 999.", id="run-unknown"),
    pytest.param("/api/runs/999/quality", TOKEN, 404, "there is no run 999.", id="quality-unknown"),
    pytest.param("/api/runs/99x", TOKEN, 400, "'99x' is not a run number:", id="run-malformed"),
    pytest.param("/api/runs/-1", TOKEN, 400, "'-1' is not a run number:", id="run-negative"),
    pytest.param("/api/runs/1234567890123", TOKEN, 400, "is not a run number:", id="run-huge"),
    pytest.param(
        "/api/runs/%C2%B2",
        TOKEN,
        400,
        "is not a run number:",
        id="run-superscript-two",
    ),
    pytest.param(
        "/api/runs/105/quality?x=1", TOKEN, 400, "unknown parameter 'x'", id="quality-param"
    ),
    pytest.param("/api/analyses?version=1", TOKEN, 400, "give the analysis", id="analysis-missing"),
    pytest.param(
        "/api/analyses?analysis=energy_scale", TOKEN, 400, "version=V", id="version-missing"
    ),
    pytest.param(
        "/api/analyses?analysis=energy_scale&version=0",
        TOKEN,
        400,
        "version must be at least 1",
        id="version-zero",
    ),
    pytest.param(
        f"/api/analyses?analysis=energy_scale&version={HUGE}",
        TOKEN,
        400,
        "version",
        id="version-huge",
    ),
    pytest.param(
        "/api/goodruns?since=9&until=3",
        TOKEN,
        400,
        "--since 9 is above --until 3",
        id="since-above-until",
    ),
    pytest.param(
        "/api/goodruns?since=soon", TOKEN, 400, "since must be a whole number", id="since-nan"
    ),
    pytest.param(
        "/api/goodruns?until=-1", TOKEN, 400, "until must be at least 0", id="until-negative"
    ),
    pytest.param(f"/api/goodruns?since={HUGE}", TOKEN, 400, "since", id="since-huge"),
    pytest.param("/api/nothing", TOKEN, 404, "no such endpoint", id="endpoint-unknown"),
    pytest.param("/api/runs", "not the token", 401, "the token is wrong.", id="token-wrong"),
    pytest.param("/api/runs?token=nope", None, 401, "the token is wrong.", id="token-wrong-in-url"),
    pytest.param("/api/runs/105", None, 401, "this API needs its token", id="token-missing"),
]


# === The command line ============================================================================
# (arguments, words of the sentence on standard error)

CLI_CASES = [
    pytest.param(
        ("signoff", "999", "--comment", "x"), "run 999 does not exist.", id="signoff-unknown-run"
    ),
    pytest.param(
        ("signoff", "107", "--comment", "x"),
        "run 107 is Data Taking",
        id="signoff-not-all-completed",
    ),
    pytest.param(
        ("signoff", "abc", "--comment", "x"), "'abc' is not a valid integer", id="signoff-run-nan"
    ),
    pytest.param(
        ("signoff", "-1", "--comment", "x"), "No such option '-1'", id="signoff-run-negative"
    ),
    pytest.param(
        ("signoff", HUGE, "--comment", "x"),
        "is not in the range 0<=x<=2147483647",
        id="signoff-run-huge",
    ),
    pytest.param(("signoff", "105"), "Missing option '--comment'", id="signoff-no-comment"),
    pytest.param(
        ("signoff", "105", "--comment", " "),
        "a sign-off needs a comment",
        id="signoff-empty-comment",
    ),
    pytest.param(
        ("signoff", "105", "--comment", MEGABYTE),
        "at most 2,000 characters",
        id="signoff-comment-1MB",
    ),
    pytest.param(
        ("signoff", "105", "--stage", "hv=Good", "--comment", "x"),
        "there is no stage 'hv'",
        id="signoff-stage-unknown",
    ),
    pytest.param(
        ("signoff", "105", "--stage", "pmt=Maybe", "--comment", "x"),
        "not 'Maybe'",
        id="signoff-decision-unknown",
    ),
    pytest.param(
        ("signoff", "105", "--stage", "pmt", "--comment", "x"),
        "--stage takes stage=Good",
        id="signoff-stage-malformed",
    ),
    pytest.param(
        ("signoff", "101", "--comment", "x"), "run 101 is certified", id="signoff-certified"
    ),
    pytest.param(("certify", "104"), "run 104 is not signed off yet", id="certify-not-signed-off"),
    pytest.param(("certify", "107"), "run 107 is Data Taking", id="certify-not-all-completed"),
    pytest.param(("certify", "999"), "run 999 does not exist.", id="certify-unknown-run"),
    pytest.param(("reopen", "101"), "Missing option '--reason'", id="reopen-no-reason"),
    pytest.param(("reopen", "101", "--reason", " "), "needs the reason", id="reopen-empty-reason"),
    pytest.param(
        ("reopen", "105", "--reason", "x"), "open for sign-off already", id="reopen-open-run"
    ),
    pytest.param(("decisions", "999"), "run 999 does not exist.", id="decisions-unknown-run"),
    pytest.param(("decisions", "abc"), "'abc' is not a valid integer", id="decisions-run-nan"),
    pytest.param(("goodruns", "--type", "cosmics"), "'cosmics' is not one of", id="goodruns-type"),
    pytest.param(
        ("goodruns", "--since", "abc"), "'abc' is not a valid integer", id="goodruns-since-nan"
    ),
    pytest.param(
        ("goodruns", "--since", "-1"), "-1 is not in the range", id="goodruns-since-negative"
    ),
    pytest.param(
        ("goodruns", "--until", "x"), "'x' is not a valid integer", id="goodruns-until-nan"
    ),
    pytest.param(
        ("goodruns", "--since", "9", "--until", "3"),
        "--since 9 is above --until 3",
        id="goodruns-since-above-until",
    ),
    pytest.param(("goodruns", "--since", HUGE), "since", id="goodruns-since-huge"),
    pytest.param(
        ("report", "999", "-o", "{tmp}/r.html"), "run 999 does not exist.", id="report-unknown-run"
    ),
    pytest.param(
        ("report", "105", "-o", "{tmp}/missing/r.html"),
        "No such file or directory",
        id="report-missing-folder",
    ),
    pytest.param(("report", "105", "-o", "{tmp}"), "is a directory", id="report-output-directory"),
    pytest.param(
        ("retry", "99999", "--reason", "x"), "job 99999 does not exist.", id="retry-unknown-job"
    ),
    pytest.param(("retry",), "give either a JOB id or --run RUN.", id="retry-nothing"),
    pytest.param(
        ("retry", "1", "--run", "105"), "give either a JOB id or --run RUN.", id="retry-job-and-run"
    ),
    pytest.param(("retry", "--run", "999"), "run 999 does not exist.", id="retry-unknown-run"),
    pytest.param(("retry", "0"), "0 is not in the range", id="retry-job-zero"),
    pytest.param(("retry", "{done_job}"), "only FAILED or TOCHECK jobs", id="retry-done-job"),
    pytest.param(
        ("retry", "{certified_job}"), "run 101 is certified", id="retry-certified-without-reason"
    ),
    pytest.param(("retry", HUGE), "is not in the range 1<=x<=2147483647", id="retry-job-huge"),
    pytest.param(
        ("alarms", "ack", "{alarm}", "--comment", " "),
        "needs a comment",
        id="alarm-ack-empty-comment",
    ),
    pytest.param(
        ("alarms", "ack", "9999", "--comment", "seen"), "no alarm 9999", id="alarm-ack-unknown"
    ),
    pytest.param(
        ("run", "set", "106", "--comment", MEGABYTE),
        "at most 2,000 characters",
        id="run-comment-1MB",
    ),
    pytest.param(
        ("serve", "--port", "{port}", "--credentials", "{credentials}"),
        "'superuser' is not a role",
        id="serve-role-unknown",
    ),
]


# === The dashboard's writes, through its data access (app.source.Source) ==========================
# (the write, made as the actor named, words of the sentence of the exception refusing it)

Write = Callable[[Shift], object]

WRITE_CASES = [
    pytest.param(
        lambda sh: sh.source.add_comment(105, "   ", actor=SHIFTER),
        "a comment needs some text.",
        id="comment-empty",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, MEGABYTE, actor=SHIFTER),
        "at most 2,000 characters, not 1,000,000.",
        id="comment-1MB",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(999, "seen", actor=SHIFTER),
        "run 999 does not exist.",
        id="comment-unknown-run",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, "+1", actor=SHIFTER, parent_id=99999),
        "comment 99999 does not exist.",
        id="reply-to-no-comment",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(
            105, "+1", actor=SHIFTER, parent_id=sh.ids["comment_on_104"]
        ),
        "is on run 104: a reply is on the same run.",
        id="reply-to-comment-of-another-run",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, "odd", actor=SHIFTER, target="detector"),
        "not 'detector'",
        id="comment-target-unknown",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, "odd", actor=SHIFTER, target="histogram:calib/nope"),
        "there is no histogram 'calib/nope'",
        id="comment-on-unknown-histogram",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, "seen", actor=VIEWER),
        "needs the shifter role; vic is a viewer.",
        id="comment-by-viewer",
    ),
    pytest.param(
        lambda sh: sh.source.add_comment(105, "seen", actor=ANONYMOUS),
        "needs a login",
        id="comment-not-logged-in",
    ),
    pytest.param(
        lambda sh: sh.source.set_run_comment(105, MEGABYTE, actor=SHIFTER),
        "at most 2,000 characters",
        id="run-comment-1MB",
    ),
    pytest.param(
        lambda sh: sh.source.change_run_tags(105, SHIFTER, add=["Not a tag!"]),
        "run tag 'Not a tag!' is not a word",
        id="run-tag-malformed",
    ),
    pytest.param(
        lambda sh: sh.source.decide(107, "sign_off", actor=SHIFTER, comment="fine"),
        "run 107 is Data Taking: a run is signed off once it is All Completed.",
        id="signoff-not-all-completed",
    ),
    pytest.param(
        lambda sh: sh.source.decide(107, "certify", actor=EXPERT, comment=""),
        "run 107 is Data Taking",
        id="certify-not-all-completed",
    ),
    pytest.param(
        lambda sh: sh.source.decide(999, "sign_off", actor=SHIFTER, comment="fine"),
        "run 999 does not exist.",
        id="signoff-unknown-run",
    ),
    pytest.param(
        lambda sh: sh.source.decide(105, "sign_off", actor=SHIFTER, comment="", stages={}),
        "a sign-off needs a comment",
        id="signoff-empty-comment",
    ),
    pytest.param(
        lambda sh: sh.source.decide(105, "sign_off", actor=SHIFTER, comment=MEGABYTE),
        "at most 2,000 characters",
        id="signoff-comment-1MB",
    ),
    pytest.param(
        lambda sh: sh.source.decide(
            105, "sign_off", actor=SHIFTER, comment="ok", stages={"hv": "Good"}
        ),
        "there is no stage 'hv'",
        id="signoff-stage-unknown",
    ),
    pytest.param(
        lambda sh: sh.source.decide(
            105, "sign_off", actor=SHIFTER, comment="ok", stages={"pmt": "Maybe"}
        ),
        "stage pmt is signed off Good or Bad, not 'Maybe'.",
        id="signoff-decision-unknown",
    ),
    pytest.param(
        lambda sh: sh.source.decide(105, "approve", actor=EXPERT, comment="ok"),
        "'approve' is not a decision.",
        id="decision-unknown",
    ),
    pytest.param(
        lambda sh: sh.source.decide(101, "sign_off", actor=SHIFTER, comment="again"),
        "run 101 is certified: an expert sends it back to sign-off first.",
        id="signoff-certified-run",
    ),
    pytest.param(
        lambda sh: sh.source.decide(103, "certify", actor=SHIFTER, comment=""),
        "certifying a run needs the expert role; sam is a shifter.",
        id="certify-by-shifter",
    ),
    pytest.param(
        lambda sh: sh.source.decide(103, "certify", actor=VIEWER, comment=""),
        "certifying a run needs the expert role; vic is a viewer.",
        id="certify-by-viewer",
    ),
    pytest.param(
        lambda sh: sh.source.decide(104, "certify", actor=EXPERT, comment=""),
        "run 104 is not signed off yet",
        id="certify-not-signed-off",
    ),
    pytest.param(
        lambda sh: sh.source.decide(101, "reopen", actor=EXPERT, comment="  "),
        "sending a run back to sign-off needs the reason.",
        id="reopen-without-reason",
    ),
    pytest.param(
        lambda sh: sh.source.decide(101, "reopen", actor=SHIFTER, comment="reprocessed"),
        "needs the expert role",
        id="reopen-by-shifter",
    ),
    pytest.param(
        lambda sh: sh.source.pin_reference(105, 999, actor=SHIFTER, for_type=False, comment=""),
        "run 999 is not in the DQM database.",
        id="pin-unknown-reference",
    ),
    pytest.param(
        lambda sh: sh.source.pin_reference(105, 105, actor=SHIFTER, for_type=False, comment=""),
        "run 105 cannot be its own reference.",
        id="pin-run-itself",
    ),
    pytest.param(
        lambda sh: sh.source.pin_reference(999, 104, actor=SHIFTER, for_type=False, comment=""),
        "run 999 does not exist.",
        id="pin-for-unknown-run",
    ),
    pytest.param(
        lambda sh: sh.source.pin_reference(105, 104, actor=SHIFTER, for_type=True, comment=""),
        "needs the expert role; sam is a shifter.",
        id="pin-type-by-shifter",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults("physics", 2.0, 0.99, (0.05, 0.15), actor=EXPERT),
        "dead cut must lie in [0, 1], not 2.0.",
        id="cut-above-one",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults(
            "physics", 0.01, float("nan"), (0.05, 0.15), actor=EXPERT
        ),
        "hot cut must lie in [0, 1], not nan.",
        id="cut-nan",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults("physics", 0.01, 0.99, (-0.1, 0.15), actor=EXPERT),
        "the normal band's ends must lie in [0, 1]",
        id="band-below-zero",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults("physics", 0.01, 0.99, (0.5, 0.15), actor=EXPERT),
        "the normal band runs backwards (0.5 to 0.15).",
        id="band-backwards",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults("physics", 0.01, 0.99, (0.05, 0.15), actor=SHIFTER),
        "needs the expert role; sam is a shifter.",
        id="cuts-by-shifter",
    ),
    pytest.param(
        lambda sh: sh.source.save_cut_defaults("cosmics", 0.01, 0.99, (0.05, 0.15), actor=EXPERT),
        "cosmics",
        id="cuts-of-unknown-run-type",
    ),
    pytest.param(
        lambda sh: sh.source.retry_job(99999, actor=SHIFTER),
        "job 99999 does not exist.",
        id="retry-unknown-job",
    ),
    pytest.param(
        lambda sh: sh.source.retry_job(sh.ids["done_job"], actor=SHIFTER),
        "only FAILED or TOCHECK jobs are retried.",
        id="retry-done-job",
    ),
    pytest.param(
        lambda sh: sh.source.retry_job(sh.ids["failed_job"], actor=VIEWER),
        "needs the shifter role; vic is a viewer.",
        id="retry-by-viewer",
    ),
    pytest.param(
        lambda sh: sh.source.retry_job(sh.ids["certified_job"], actor=EXPERT),
        "run 101 is certified",
        id="retry-certified-without-reason",
    ),
    pytest.param(
        lambda sh: sh.source.acknowledge_alarm(sh.ids["alarm"], actor=SHIFTER, comment=" "),
        "needs a comment",
        id="alarm-ack-empty-comment",
    ),
    pytest.param(
        lambda sh: sh.source.acknowledge_alarm(9999, actor=SHIFTER, comment="seen"),
        "no alarm 9999",
        id="alarm-ack-unknown",
    ),
    pytest.param(
        lambda sh: sh.source.close_alarm(sh.ids["alarm"], actor=SHIFTER, comment="known"),
        "needs the expert role",
        id="alarm-close-by-shifter",
    ),
]


# === The dashboard's forms, through the state classes behind the pages ============================
# (what the form does, the notice or message the page then shows)


def notice(run_id: int, actor: Actor, act: Callable[[RunState], None]) -> Callable[[Shift], str]:
    """What the run page of ``run_id`` shows ``actor`` after ``act``."""

    def make(sh: Shift) -> str:
        page = RunState(source=sh.source, run_id=run_id, user=actor.name, role=actor.role)
        act(page)
        return str(page.notice)

    return make


def jobs_notice(actor: Actor, job: str | int, reason: str = "") -> Callable[[Shift], str]:
    """What the jobs page shows ``actor`` after retrying ``job`` (a name of Shift.ids, or an id)."""

    def make(sh: Shift) -> str:
        # (param's constructor, inherited by JobsState, has no annotations)
        page = JobsState(  # type: ignore[no-untyped-call]
            source=sh.source, user=actor.name, role=actor.role, retry_reason=reason
        )
        page.retry(sh.ids[job] if isinstance(job, str) else job)
        return str(page.notice)

    return make


def search_message(text: str) -> Callable[[Shift], str]:
    """What the recent-runs page says after a search for ``text``."""

    def make(sh: Shift) -> str:
        return str(RecentRuns(source=sh.source, search=text).message)

    return make


FORM_CASES = [
    pytest.param(
        notice(107, SHIFTER, lambda p: p.decide("sign_off", "fine")),
        "Run 107 not signed off: run 107 is Data Taking",
        id="signoff-form-not-all-completed",
    ),
    pytest.param(
        notice(103, SHIFTER, lambda p: p.decide("certify", "")),
        "Run 103 not certified: certifying a run needs the expert role",
        id="certify-form-by-shifter",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.decide("sign_off", "ok", {"pmt": "ok"})),
        "not 'ok'",
        id="signoff-form-decision-unknown",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.add_comment("")),
        "Comment not added: a comment needs some text.",
        id="comment-form-empty",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.add_comment(MEGABYTE)),
        "Comment not added: a comment holds at most 2,000 characters",
        id="comment-form-1MB",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.set_tags("messy Not-a-tag!")),
        "Not saved: run tag",
        id="tags-form-malformed",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.pin_reference("abc", for_type=False)),
        "Not pinned: 'abc' is not a run number",
        id="pin-form-not-a-number",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.pin_reference("-1", for_type=False)),
        "Not pinned: '-1' is not a run number",
        id="pin-form-negative",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.pin_reference("999", for_type=False)),
        "Not pinned: run 999 is not in the DQM database.",
        id="pin-form-unknown-run",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.pin_reference(HUGE, for_type=False)),
        "Not pinned",
        id="pin-form-huge",
    ),
    pytest.param(
        notice(105, SHIFTER, lambda p: p.pin_reference("²", for_type=False)),
        "Not pinned",
        id="pin-form-superscript-two",
    ),
    pytest.param(
        jobs_notice(SHIFTER, 99999),
        "Job 99999 not retried: job 99999 does not exist.",
        id="retry-form-unknown-job",
    ),
    pytest.param(
        jobs_notice(EXPERT, "certified_job"),
        "needs an expert and the reason.",
        id="retry-form-certified-without-reason",
    ),
    pytest.param(
        jobs_notice(VIEWER, "failed_job", reason="copied again"),
        "needs the shifter role; vic is a viewer.",
        id="retry-form-by-viewer",
    ),
    pytest.param(search_message("abc"), "'abc' is not a run number", id="search-not-a-number"),
    pytest.param(search_message("-1"), "'-1' is not a run number", id="search-negative"),
    pytest.param(search_message("999"), "There is no run 999.", id="search-unknown-run"),
    pytest.param(
        search_message("²"),
        "is not a run number",
        id="search-superscript-two",
    ),
    pytest.param(
        search_message(HUGE),
        "is not a run number: run numbers are whole numbers from 0 to 2,147,483,647.",
        id="search-huge",
    ),
]


# === The dashboard's URL parameters ===============================================================
# (the parameters the page is opened with, words of the message it shows)

URL_CASES = [
    pytest.param({"run": "abc"}, "'abc' is not a run number", id="run-not-a-number"),
    pytest.param({"run": "-1"}, "'-1' is not a run number", id="run-negative"),
    pytest.param({"run": "999"}, "There is no run 999 in the database.", id="run-unknown"),
    pytest.param({"page": "run"}, "Choose a run in the table.", id="run-missing"),
    pytest.param({"page": "nothing"}, "There is no page 'nothing'", id="page-unknown"),
    pytest.param({"run": "105", "tab": "x"}, "There is no tab 'x'", id="tab-unknown"),
    pytest.param(
        {"run": "²"},
        "is not a run number",
        id="run-superscript-two",
    ),
    pytest.param(
        {"run": HUGE},
        "is not a run number: run numbers are whole numbers from 0 to 2,147,483,647.",
        id="run-huge",
    ),
    pytest.param(
        {"page": "trends", "trend": {"version": "two"}},
        "'two' is not a version",
        id="trend-version-not-a-number",
    ),
    pytest.param(
        {"page": "trends", "trend": {"x": "sideways"}},
        "There is no x axis 'sideways'",
        id="trend-x-unknown",
    ),
    pytest.param(
        {"page": "trends", "trend": {"min_run": "-3"}},
        "min_run: '-3' is not a run number",
        id="trend-min-run-negative",
    ),
    pytest.param(
        {"page": "trends", "trend": {"days": "0"}},
        "'0' is not a number of days",
        id="trend-days-zero",
    ),
    pytest.param(
        {"page": "trends", "trend": {"days": "nan"}},
        "'nan' is not a number of days",
        id="trend-days-nan",
    ),
    pytest.param(
        {"page": "trends", "trend": {"tags": "Not-a-tag!"}},
        "tags: run tag",
        id="trend-tag-malformed",
    ),
    pytest.param(
        {"page": "trends", "trend": {"max_run": "²"}},
        "is not a run number",
        id="trend-max-run-superscript-two",
    ),
]


# === The PMTs, the masks and the event display ====================================================


def pmt_search(text: str) -> Callable[[Shift], str]:
    """What the PMT page says after a search for PMT ``text``."""

    def make(sh: Shift) -> str:
        page = PmtHistoryState(source=sh.source, run_id=105)
        page.search(text)
        return str(page.message)

    return make


def mask_notice(actor: Actor, add: str, comment: str = "HV board off") -> Callable[[Shift], str]:
    """What the PMT page's mask form shows ``actor`` after asking to mask ``add``."""

    def make(sh: Shift) -> str:
        page = PmtHistoryState(source=sh.source, run_id=105, user=actor.name, role=actor.role)
        page.edit_mask(None, add, "", comment)
        return str(page.notice)

    return make


def event_message(index: object) -> Callable[[Shift], str]:
    """What the Events tab says when asked for event ``index`` of a run with two kept events."""

    def make(sh: Shift) -> str:
        def event(entry: int) -> KeptEvent:
            return KeptEvent(
                entry=entry,
                trigger_time_s=0.1,
                energy_mev=1.0,
                vertex_mm=(0.0, 0.0, 1000.0),
                n_hits=3,
                pmt_id=np.array([1, 2, 3]),
                charge_pe=np.ones(3),
                first_hit_ns=np.ones(3),
            )

        page = EventsState(loader=lambda run_id: [event(0), event(5)], run_id=105)
        page.show(index)
        return str(page.message)

    return make


PMT_FORM_CASES = [
    pytest.param(pmt_search("99999"), "there is no PMT 99999", id="pmt-search-unknown"),
    pytest.param(pmt_search("4242a"), "not '4242a'", id="pmt-search-not-a-number"),
    pytest.param(pmt_search("-3"), "not '-3'", id="pmt-search-negative"),
    pytest.param(event_message(7), "There is no event 7:", id="event-index-out-of-range"),
    pytest.param(event_message(-1), "There is no event -1:", id="event-index-negative"),
    pytest.param(event_message("x"), "is not an event number", id="event-index-not-a-number"),
    pytest.param(
        mask_notice(EXPERT, "17, 99999"), "there is no PMT 99999", id="mask-form-pmt-99999"
    ),
    pytest.param(mask_notice(EXPERT, "30-20"), "runs backwards", id="mask-form-range-backwards"),
    pytest.param(mask_notice(EXPERT, "17", "  "), "the comment is empty", id="mask-form-no-why"),
    pytest.param(
        mask_notice(SHIFTER, "17"),
        "changing a PMT mask needs the expert role",
        id="mask-form-by-shifter",
    ),
]

PMT_CLI_CASES = [
    pytest.param(("pmt", "history", "99999"), "there is no PMT 99999", id="pmt-history-99999"),
    pytest.param(("pmt", "history", "abc"), "not 'abc'", id="pmt-history-not-a-number"),
    pytest.param(("pmt", "changes", "999"), "run 999 does not exist.", id="pmt-changes-unknown"),
    pytest.param(("mask", "show", "7"), "there is no PMT mask version 7.", id="mask-show-unknown"),
    pytest.param(
        ("mask", "edit", "--from-run", "105", "--add", "99999", "--comment", "x"),
        "there is no PMT 99999",
        id="mask-edit-pmt-99999",
    ),
    pytest.param(
        ("mask", "derive", "--until", "106", "--consecutive", "50"),
        "needs 50",
        id="mask-derive-too-few-runs",
    ),
]

PMT_WRITE_CASES = [
    pytest.param(
        lambda sh: sh.source.add_comment(105, "odd", actor=SHIFTER, target="pmt:99999"),
        "99999",
        id="comment-on-pmt-99999",
    ),
    pytest.param(
        lambda sh: sh.source.derive_mask(
            run_type="physics", until_run=106, consecutive=50, actor=EXPERT
        ),
        "needs 50",
        id="mask-derive-too-few-runs",
    ),
    pytest.param(
        lambda sh: sh.source.derive_mask(
            run_type="physics", until_run=999, consecutive=2, actor=EXPERT
        ),
        "run 999 does not exist.",
        id="mask-derive-unknown-run",
    ),
]


# === The tests ===================================================================================


@pytest.mark.parametrize(("path", "token", "status", "words"), API_CASES)
def test_the_api_answers_bad_input_with_its_status_and_one_sentence(
    shift: Shift, path: str, token: str | None, status: int, words: str
) -> None:
    def ask() -> str:
        got, content_type, body = api_get(shift.api, path, token)
        assert (got, content_type) == (status, "application/json; charset=utf-8"), body[:200]
        answer = json.loads(body)
        assert list(answer) == ["error"], answer
        return str(answer["error"])

    answered_and_unchanged(shift, ask, words)


def test_the_api_above_its_rate_answers_429_with_one_sentence(shift: Shift) -> None:
    limited = Served(Api(shift.source, per_minute=1))
    try:
        assert api_get(limited, "/api/runs", None)[0] == 200

        def ask() -> str:
            status, _, body = api_get(limited, "/api/runs", None)
            assert status == 429, body[:200]
            return str(json.loads(body)["error"])

        answered_and_unchanged(shift, ask, "too many requests: at most 1 a minute")
    finally:
        limited.close()


@pytest.mark.parametrize(("args", "words"), CLI_CASES + PMT_CLI_CASES)
def test_the_command_line_answers_bad_input_with_one_sentence(
    shift: Shift, args: tuple[str, ...], words: str
) -> None:
    answered_and_unchanged(shift, lambda: shift.dqm(*args), words)


@pytest.mark.parametrize(("write", "words"), WRITE_CASES + PMT_WRITE_CASES)
def test_a_bad_write_of_the_dashboard_is_refused_with_one_sentence(
    shift: Shift, write: Write, words: str
) -> None:
    answered_and_unchanged(shift, lambda: refusal(lambda: write(shift)), words)


@pytest.mark.parametrize(("make", "words"), FORM_CASES + PMT_FORM_CASES)
def test_a_bad_form_of_the_dashboard_shows_one_sentence(
    shift: Shift, make: Callable[[Shift], str], words: str
) -> None:
    answered_and_unchanged(shift, lambda: make(shift), words)


@pytest.mark.parametrize(("arguments", "words"), URL_CASES)
def test_a_bad_url_parameter_of_the_dashboard_shows_one_sentence(
    shift: Shift, arguments: dict[str, Any], words: str
) -> None:
    answered_and_unchanged(shift, lambda: shift.url_message(**arguments), words)


def test_a_write_made_before_the_refusal_is_caught(sqlite_database: str, tmp_path: Path) -> None:
    """The check that nothing changed sees rows added before a refusal, and rows updated (the
    run's sign-off state)."""
    installation = Shift(fill_judged_runs(sqlite_database), tmp_path)
    try:

        def writes_then_refuses() -> None:
            installation.source.add_comment(106, "seen", actor=SHIFTER)
            installation.source.decide(106, "sign_off", actor=SHIFTER, comment="fine")
            raise InvalidValueError("refused after all.")

        with pytest.raises(AssertionError, match="yet .* changed") as caught:
            answered_and_unchanged(
                installation, lambda: refusal(writes_then_refuses), "refused after all."
            )
        for table in ("'comments'", "'run_decisions'", "'runs'"):
            assert table in str(caught.value)
    finally:
        installation.api.close()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("  \n ", id="blank"),
        pytest.param("run 999 does not exist.\nrun 998 neither.", id="two-lines"),
        pytest.param("run 999 does not exist", id="no-full-stop"),
        pytest.param("Traceback (most recent call last): OverflowError.", id="traceback"),
        pytest.param("<html><title>500: Internal Server Error</title></html>", id="html-page"),
    ],
)
def test_an_answer_that_is_not_one_sentence_is_caught(text: str) -> None:
    with pytest.raises(AssertionError):
        one_sentence(text)


def test_there_are_at_least_30_distinct_bad_inputs() -> None:
    tables = [API_CASES, CLI_CASES, WRITE_CASES, FORM_CASES, URL_CASES]
    for table in tables:
        assert len({case.id for case in table}) == len(table)  # each its own input
    answered = [case for table in tables for case in table if not case.marks]
    assert len(answered) + 1 >= 30  # and the rate limit
