"""The JSON API: keyset pages that walk every run, a run and its quality, an analysis's results, the
good-run list; every bad parameter a 400 with one sentence, an unknown run a 404, a wrong token a
401, a client above its rate a 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiserver import Served
from judgedruns import fill_judged_runs

from app.api import Api, RateLimiter
from app.source import Source
from dqm.db import queries
from dqm.db.session import transaction

TOKEN = "a token of sixteen characters or more"


@pytest.fixture
def url(sqlite_database: str) -> str:
    url = fill_judged_runs(sqlite_database)
    with transaction(url) as s:
        for run_id in (101, 102):
            for action in ("sign_off", "certify"):
                queries.decide(
                    s, run_id=run_id, action=action, user="eve", role="expert", comment="fine"
                )
    return url


@pytest.fixture
def served(url: str) -> Iterator[Served]:
    server = Served(Api(Source(url), per_minute=0))
    yield server
    server.close()


def test_pages_walk_every_run_and_each_run_has_its_quality(served: Served) -> None:
    seen, path = [], "/api/runs?limit=4"
    while path:
        status, body, _ = served.get(path)
        assert status == 200 and body["count"] == len(body["items"])
        seen += [r["run"] for r in body["items"]]
        path = body["next"]
    assert seen == [101, 102, 103, 104, 105, 106]
    _, first, _ = served.get("/api/runs?limit=1")
    assert first["items"][0] == {
        "run": 101,
        "run_type": "physics",
        "status": "All Completed",
        "start_time": first["items"][0]["start_time"],
        "end_time": first["items"][0]["end_time"],
        "events": None,
        "files": None,
        "quality": "Good",
        "sign_off": "CERTIFIED",
        "verdict": "Good",
    }
    assert served.get("/api/runs?type=laser")[1] == {"items": [], "count": 0, "next": None}
    assert [
        r["run"] for r in served.get("/api/runs?after=104&status=all-completed")[1]["items"]
    ] == [
        105,
        106,
    ]
    status, run, _ = served.get("/api/runs/105")
    assert status == 200 and run["stages"] == {"analyses": "Warning", "pmt": "Bad"}
    status, quality, _ = served.get("/api/runs/105/quality")
    assert status == 200 and quality["quality"] == "Bad"
    assert {c["check"] for c in quality["checks"]} == {"energy_po210_peak", "pmt_classes"}


def test_analyses_and_the_good_run_list(served: Served) -> None:
    status, page, _ = served.get("/api/analyses?analysis=energy_scale&version=1&limit=2&after=102")
    assert status == 200 and [r["run"] for r in page["items"]] == [103, 104]
    assert page["items"][0]["values"]["po210_peak_mev"] == {
        "value": 0.4535,
        "error": 0.001,
        "unit": "MeV",
    }
    assert page["next"] == "/api/analyses?analysis=energy_scale&version=1&limit=2&after=104"
    _, good, _ = served.get("/api/goodruns")
    assert [r["run"] for r in good["items"]] == [101, 102]
    assert good["items"][0]["check_versions"] == {"pmt_classes": 1}
    assert [r["run"] for r in served.get("/api/goodruns?after=101")[1]["items"]] == [102]
    assert served.get("/api/goodruns?type=laser")[1]["items"] == []


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/runs?limit=0", 400, "limit must be at least 1, not 0."),
        ("/api/runs?limit=5000", 400, "limit must be at most 1000, not 5000."),
        ("/api/runs?after=abc", 400, "after must be a whole number, not 'abc'."),
        ("/api/runs?type=cosmics", 400, "type 'cosmics' is not a run type"),
        ("/api/runs?status=Sleeping", 400, "'Sleeping' is not a run status"),
        ("/api/runs?colour=red", 400, "unknown parameter 'colour'; the parameters are limit"),
        ("/api/runs?limit=1&limit=2", 400, "parameter limit is given 2 times."),
        ("/api/runs/999", 404, "there is no run 999."),
        ("/api/runs/99x", 400, "'99x' is not a run number:"),
        ("/api/runs/999/quality", 404, "there is no run 999."),
        ("/api/analyses?version=1", 400, "give the analysis"),
        ("/api/analyses?analysis=energy_scale", 400, "give the analysis's version"),
        ("/api/analyses?analysis=energy_scale&version=0", 400, "version must be at least 1"),
        ("/api/goodruns?since=9&until=3", 400, "--since 9 is above --until 3"),
        ("/api/nothing", 404, "no such endpoint; the endpoints are /api/runs"),
    ],
)
def test_bad_requests_are_one_sentence(
    served: Served, path: str, status: int, message: str
) -> None:
    got, body, _ = served.get(path)
    assert got == status and list(body) == ["error"]
    assert message in body["error"] and "\n" not in body["error"]


def test_a_token_and_a_rate_limit(url: str) -> None:
    server = Served(Api(Source(url), token=TOKEN, per_minute=3))
    try:
        status, body, _ = server.get("/api/runs")
        assert status == 401 and body["error"].startswith("this API needs its token")
        status, body, _ = server.get("/api/runs", {"Authorization": "Bearer not the token"})
        assert (status, body["error"]) == (401, "the token is wrong.")
        assert server.get("/api/runs", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert server.get(f"/api/runs?token={TOKEN.replace(' ', '%20')}")[0] == 200
        assert server.get("/api/runs/101", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        status, body, headers = server.get("/api/runs", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 429 and body["error"].startswith("too many requests: at most 3 a minute")
        assert int(headers["Retry-After"]) >= 1
    finally:
        server.close()


def test_the_rate_limit_refills_evenly() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one a second, a burst of 60
    assert all(limiter.wait_s("a") == 0 for _ in range(60))
    assert limiter.wait_s("a") == pytest.approx(1.0)
    assert limiter.wait_s("b") == 0  # each client its own
    now[0] += 2.0
    assert limiter.wait_s("a") == 0 and limiter.wait_s("a") == 0
    assert limiter.wait_s("a") > 0
    assert RateLimiter(0).wait_s("a") == 0  # no limit
