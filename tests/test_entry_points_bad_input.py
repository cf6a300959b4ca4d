"""Bad input at every entry point of the shift's tools — the dashboard's forms, its URL parameters,
the JSON API and the command line — answered with one sentence, and nothing changed.

One table of cases. Each makes one bad request on an installation of judged runs (101..106 All
Completed with their PMT history, 107 still taking data, an alarm, a failed job) and gives the
sentence it got back; the test checks the sentence (one line, a full stop, the words expected)
and that every table of the database holds what it held before, row for row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import Served
from click.testing import CliRunner
from judgedruns import START, fill_judged_runs
from pmthistory import fill_pmt_history
from sqlalchemy import select

from app.api import Api
from app.events import EventsState
from app.main import DQMApp
from app.source import Source
from app.state import PmtHistoryState, RunState
from dqm.cli import cli
from dqm.db import queries
from dqm.db.models import Base
from dqm.db.session import dispose_engines, transaction
from dqm.errors import DQMError
from dqm.keptevents import KeptEvent
from dqm.states import JobState
from dqm.users import Actor, Role

TOKEN = "a token of sixteen characters or more"
SHIFTER = Actor("sam", Role.SHIFTER)
EXPERT = Actor("eve", Role.EXPERT)
VIEWER = Actor("vic", Role.VIEWER)


class Installation:
    """The database, its data access, the API on a port, the command line."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.source = Source(url)
        self.api = Served(Api(self.source, token=TOKEN, per_minute=0))
        with transaction(url) as s:
            job = queries.add_job(s, kind="process_file", run_id=105)
            job.state, job.error = JobState.FAILED, "105.0.root is truncated"
            self.alarm = queries.list_alarms(s, run_id=105)[0].id

    def snapshot(self) -> dict[str, str]:
        """Every table, row for row (a digest of each)."""
        digests = {}
        with transaction(self.url) as s:
            for table in Base.metadata.sorted_tables:
                rows = s.execute(select(table)).all()
                text = repr(sorted(repr(tuple(r)) for r in rows))
                digests[table.name] = hashlib.sha256(text.encode()).hexdigest()
        return digests

    def cli(self, *args: str) -> str:
        done = CliRunner().invoke(
            cli, list(args), env={"DQM_DATABASE_URL": self.url, "USER": "ana"}
        )
        assert done.exit_code == 2, done.output
        return done.output.strip().removeprefix("error: ")

    def get(self, path: str, token: str | None = TOKEN) -> str:
        status, body, _ = self.api.get(path, {"Authorization": f"Bearer {token}"} if token else {})
        assert status in (400, 401, 404, 429), (status, body)
        assert list(body) == ["error"]
        return str(body["error"])

    def write(self, action: Callable[[], Any]) -> str:
        with pytest.raises(DQMError) as refused:
            action()
        return str(refused.value)

    def url_message(self, **arguments: str) -> str:
        app = DQMApp(source=self.source, refresh_s=0, **arguments)
        assert app._message.visible
        return str(app._message.object)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    from dqm.db import migrate

    tmp = tmp_path_factory.mktemp("bad-input")
    url = f"sqlite:///{tmp / 'dqm.sqlite'}"
    migrate.upgrade(url, "head")
    fill_pmt_history(fill_judged_runs(url))
    with transaction(url) as s:
        queries.add_run(s, run_id=107, run_type="physics", start_time=START, status="Data Taking")
    installation = Installation(url, tmp)
    yield installation
    installation.api.close()
    dispose_engines()


def _event(entry: int) -> KeptEvent:
    import numpy as np

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


def _events_message(index: object) -> str:
    state = EventsState(loader=lambda run_id: [_event(0), _event(5)], run_id=105)
    state.show(index)
    return str(state.message)


def _pmt_search(text: str) -> Callable[[Installation], str]:
    def search(i: Installation) -> str:
        state = PmtHistoryState(source=i.source, run_id=105)
        state.search(text)
        return str(state.message)

    return search


def _run_state_notice(run_id: int, actor: Actor, act: Callable[[RunState], None]) -> Callable:
    def make(i: Installation) -> str:
        state = RunState(source=i.source, run_id=run_id, user=actor.name, role=actor.role)
        act(state)
        return str(state.notice)

    return make


#: (id, how the bad input is made, words the sentence must hold)
CASES: list[tuple[str, Callable[[Installation], str], str]] = [
    # --- the dashboard's forms (through the data access the pages use) -----------------------
    (
        "empty comment",
        lambda i: i.write(lambda: i.source.add_comment(105, "   ", actor=SHIFTER)),
        "a comment needs some text.",
    ),
    (
        "comment of 1 MB",
        lambda i: i.write(lambda: i.source.add_comment(105, "x" * 1_000_000, actor=SHIFTER)),
        "2,000 characters",
    ),
    (
        "comment on an unknown run",
        lambda i: i.write(lambda: i.source.add_comment(999, "seen", actor=SHIFTER)),
        "999",
    ),
    (
        "reply to a comment that does not exist",
        lambda i: i.write(lambda: i.source.add_comment(105, "+1", actor=SHIFTER, parent_id=9999)),
        "9999",
    ),
    (
        "comment on PMT 99999",
        lambda i: i.write(
            lambda: i.source.add_comment(105, "odd", actor=SHIFTER, target="pmt:99999")
        ),
        "99999",
    ),
    (
        "comment by a viewer",
        lambda i: i.write(lambda: i.source.add_comment(105, "seen", actor=VIEWER)),
        "needs the shifter role",
    ),
    (
        "sign-off of a run not All Completed",
        lambda i: i.write(lambda: i.source.decide(107, "sign_off", actor=SHIFTER, comment="ok")),
        "107",
    ),
    (
        "sign-off with an unknown stage",
        lambda i: i.write(
            lambda: i.source.decide(
                105, "sign_off", actor=SHIFTER, comment="ok", stages={"hv": "Good"}
            )
        ),
        "there is no stage 'hv'",
    ),
    (
        "sign-off with a decision that is not one",
        lambda i: i.write(
            lambda: i.source.decide(
                105, "sign_off", actor=SHIFTER, comment="ok", stages={"pmt": "Maybe"}
            )
        ),
        "Maybe",
    ),
    (
        "sign-off without a comment",
        lambda i: i.write(lambda: i.source.decide(105, "sign_off", actor=SHIFTER, comment=" ")),
        "comment",
    ),
    (
        "certification by a shifter",
        lambda i: i.write(lambda: i.source.decide(104, "certify", actor=SHIFTER, comment="")),
        "certifying a run needs the expert role; sam is a shifter.",
    ),
    (
        "certification of a run not signed off",
        lambda i: i.write(lambda: i.source.decide(104, "certify", actor=EXPERT, comment="")),
        "104",
    ),
    (
        "sent back without a reason",
        lambda i: i.write(lambda: i.source.decide(104, "reopen", actor=EXPERT, comment="")),
        "reason",
    ),
    (
        "reference pinned to an unknown run",
        lambda i: i.write(
            lambda: i.source.pin_reference(105, 999, actor=SHIFTER, for_type=False, comment="")
        ),
        "999",
    ),
    (
        "cuts outside [0, 1]",
        lambda i: i.write(
            lambda: i.source.save_cut_defaults("physics", 2.0, 0.99, (0.05, 0.15), actor=EXPERT)
        ),
        "dead cut must lie in [0, 1], not 2.0.",
    ),
    (
        "retry of a job that does not exist",
        lambda i: i.write(lambda: i.source.retry_job(99999, actor=SHIFTER)),
        "99999",
    ),
    (
        "alarm acknowledged without a comment",
        lambda i: i.write(lambda: i.source.acknowledge_alarm(i.alarm, actor=SHIFTER, comment="")),
        "comment",
    ),
    (
        "alarm that does not exist",
        lambda i: i.write(lambda: i.source.acknowledge_alarm(9999, actor=SHIFTER, comment="seen")),
        "9999",
    ),
    (
        "mask with PMT 99999",
        lambda i: i.write(
            lambda: i.source.edit_mask(
                valid_from_run=105, add="17, 99999", remove="", actor=EXPERT, comment="HV"
            )
        ),
        "there is no PMT 99999",
    ),
    (
        "mask by a shifter",
        lambda i: i.write(
            lambda: i.source.edit_mask(
                valid_from_run=105, add="17", remove="", actor=SHIFTER, comment="HV"
            )
        ),
        "changing a PMT mask needs the expert role",
    ),
    (
        "mask derived from more runs than there are",
        lambda i: i.write(
            lambda: i.source.derive_mask(
                run_type="physics", until_run=106, consecutive=50, actor=EXPERT
            )
        ),
        "needs 50",
    ),
    ("unknown PMT searched", _pmt_search("99999"), "there is no PMT 99999"),
    ("PMT id that is not a number", _pmt_search("4242a"), "not '4242a'"),
    ("event index out of range", lambda i: _events_message(7), "There is no event 7"),
    ("event index that is not a number", lambda i: _events_message("x"), "not an event number"),
    (
        "sign-off form of a run taking data",
        _run_state_notice(107, SHIFTER, lambda s: s.decide("sign_off", "fine")),
        "107",
    ),
    # --- URL parameters ------------------------------------------------------------------------
    ("run that is not a number", lambda i: i.url_message(run="abc"), "abc"),
    ("run that does not exist", lambda i: i.url_message(run="999"), "999"),
    ("page that does not exist", lambda i: i.url_message(page="nothing"), "no page 'nothing'"),
    ("tab that does not exist", lambda i: i.url_message(run="105", tab="x"), "no tab 'x'"),
    # --- the JSON API --------------------------------------------------------------------------
    ("token that is wrong", lambda i: i.get("/api/runs", token="wrong"), "the token is wrong."),
    ("no token", lambda i: i.get("/api/runs", token=None), "needs its token"),
    ("limit of 0", lambda i: i.get("/api/runs?limit=0"), "limit must be at least 1"),
    ("unknown run over HTTP", lambda i: i.get("/api/runs/999/quality"), "there is no run 999."),
    ("run id that is not one", lambda i: i.get("/api/runs/99x"), "'99x' is not a run number."),
    (
        "good runs since after until",
        lambda i: i.get("/api/goodruns?since=9&until=3"),
        "above --until 3",
    ),
    # --- the command line ----------------------------------------------------------------------
    ("dqm signoff of an unknown run", lambda i: i.cli("signoff", "999", "--comment", "x"), "999"),
    (
        "dqm signoff of a run taking data",
        lambda i: i.cli("signoff", "107", "--comment", "x"),
        "107",
    ),
    ("dqm certify before sign-off", lambda i: i.cli("certify", "104"), "104"),
    ("dqm reopen without a reason", lambda i: i.cli("reopen", "104"), "--reason"),
    (
        "dqm goodruns of an unknown type",
        lambda i: i.cli("goodruns", "--type", "cosmics"),
        "cosmics",
    ),
    ("dqm pmt history of PMT 99999", lambda i: i.cli("pmt", "history", "99999"), "99999"),
    (
        "dqm mask edit with PMT 99999",
        lambda i: i.cli("mask", "edit", "--from-run", "1", "--add", "99999", "--comment", "x"),
        "there is no PMT 99999",
    ),
    (
        "dqm report of an unknown run",
        lambda i: i.cli("report", "999", "-o", str(i.tmp / "r.html")),
        "999",
    ),
    ("dqm retry of an unknown job", lambda i: i.cli("retry", "99999", "--reason", "x"), "99999"),
]


@pytest.mark.parametrize(("make", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence_and_changes_nothing(
    installation: Installation, make: Callable[[Installation], str], words: str
) -> None:
    before = installation.snapshot()
    sentence = make(installation)
    assert words in sentence, sentence
    assert sentence and "\n" not in sentence and "Traceback" not in sentence, sentence
    # (a usage error of the command line ends with where to read more: "(see 'dqm X --help')")
    assert sentence.endswith((".", "?", "--help')")), sentence
    changed = {
        table
        for table, digest in installation.snapshot().items()
        if digest != before[table] and table not in ("visits",)
    }
    assert not changed, f"{sentence!r} left {sorted(changed)} changed"


def test_there_are_at_least_30_cases_across_the_entry_points() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)
