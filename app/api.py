"""A read-only JSON API for other tools, served by ``dqm serve`` beside the dashboard.

    GET /api/runs?limit=N&after=RUN[&type=T][&status=S]     runs by run number
    GET /api/runs/RUN                                       one run, its quality per stage
    GET /api/runs/RUN/quality                               its checks' results
    GET /api/analyses?analysis=A&version=V&limit=N&after=RUN  an analysis's results
    GET /api/goodruns?limit=N&after=RUN[&type=T][&since=R][&until=R]  the good-run list

Lists are paginated by keyset: each page holds ``next``, the URL of the next page (None after the
last), so that a client walks 100,000 runs in pages of equal cost. A bad parameter gets a 400 with
one sentence (``{"error": "..."}``), an unknown run a 404, a client above its rate a 429 with
``Retry-After``, and, when a token is configured (``DQM_API_TOKEN``), a request without it a 401.
Data is read through :class:`app.source.Source`, like the dashboard's.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import tornado.web

from app.source import Source
from dqm.errors import DQMError, InvalidValueError
from dqm.messages import RUN_TYPES
from dqm.runs import MAX_ID, parse_id
from dqm.states import RunStatus, parse_run_status

__all__ = ["MAX_LIMIT", "Api", "RateLimiter", "api_routes"]

#: The largest page a client may ask for, and the page it gets by default.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class BadRequest(Exception):
    """A request the API refuses: its status and one sentence."""

    def __init__(self, status: int, sentence: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence
        self.headers = headers or {}


class RateLimiter:
    """At most ``per_minute`` requests a minute per client (a token bucket of that size, refilled
    evenly); 0: no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Take a request of ``client``: 0 if it may go now, else the seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget clients gone quiet (full buckets)
                full = [c for c, (t, _) in self._buckets.items() if t >= self.per_minute - 1]
                for c in full[:5_000]:
                    del self._buckets[c]
            return 0.0


class Api:
    """What the handlers share: the data, the token a request needs, the rate limit."""

    def __init__(self, source: Source, token: str | None = None, per_minute: int = 6000) -> None:
        self.source = source
        self.token = token or None
        self.limiter = RateLimiter(per_minute)


def _int(
    arguments: dict[str, str],
    name: str,
    default: int | None = None,
    low: int = 0,
    high: int = MAX_ID,
) -> Any:
    text = arguments.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,100}", text.strip()):  # ASCII digits only: not '²'
        raise BadRequest(400, f"{name} must be a whole number, not {text[:40]!r}.")
    value = int(text)
    if value < low:
        raise BadRequest(400, f"{name} must be at least {low}, not {value}.")
    if value > high:
        raise BadRequest(400, f"{name} must be at most {high}, not {text.strip()[:40]}.")
    return value


class _Handler(tornado.web.RequestHandler):
    #: The query parameters this endpoint takes.
    PARAMETERS: tuple[str, ...] = ()

    def initialize(self, api: Api) -> None:
        self.api = api

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def _arguments(self) -> dict[str, str]:
        arguments: dict[str, str] = {}
        for name, values in self.request.query_arguments.items():
            if name == "token":
                continue
            if name not in self.PARAMETERS:
                known = ", ".join(self.PARAMETERS) or "none"
                raise BadRequest(
                    400, f"unknown parameter {name[:40]!r}; the parameters are {known}."
                )
            if len(values) != 1:
                raise BadRequest(400, f"parameter {name} is given {len(values)} times.")
            arguments[name] = values[0].decode("utf-8", "replace").strip()
        return arguments

    def _check_access(self) -> None:
        token = self.api.token
        if token is not None:
            given = self.request.headers.get("Authorization", "")
            given = given.removeprefix("Bearer ").strip() or self.get_query_argument("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise BadRequest(
                    401,
                    "this API needs its token: Authorization: Bearer TOKEN (or ?token=TOKEN)."
                    if not given
                    else "the token is wrong.",
                )
        wait = self.api.limiter.wait_s(self.request.remote_ip or "?")
        if wait > 0:
            raise BadRequest(
                429,
                f"too many requests: at most {self.api.limiter.per_minute} a minute; try again "
                f"in {wait:.1f} s.",
                {"Retry-After": str(max(1, round(wait)))},
            )

    def get(self, *path: str) -> None:
        try:
            self._check_access()
            body = self.answer(self._arguments(), *path)
        except BadRequest as exc:
            self.set_status(exc.status)
            for key, value in exc.headers.items():
                self.set_header(key, value)
            body = {"error": exc.sentence}
        except DQMError as exc:
            self.set_status(400)
            body = {"error": str(exc)}
        self.finish(json.dumps(body, separators=(",", ":")))

    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        raise NotImplementedError

    def _page(self, items: list[dict[str, Any]], arguments: dict[str, str], limit: int) -> Any:
        """A page and the URL of the next one (None after the last)."""
        following = None
        if len(items) == limit and items:
            query = {**arguments, "after": str(items[-1]["run"]), "limit": str(limit)}
            following = f"{self.request.path}?{urlencode(query)}"
        return {"items": items, "count": len(items), "next": following}

    def _limit(self, arguments: dict[str, str]) -> int:
        limit: int = _int(arguments, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        return limit


def _run_types(arguments: dict[str, str]) -> list[str] | None:
    text = arguments.get("type")
    if not text:
        return None
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in RUN_TYPES]
    if bad:
        raise BadRequest(
            400,
            f"type {bad[0][:40]!r} is not a run type; the run types are {', '.join(RUN_TYPES)}.",
        )
    return types


def _run_id(text: str) -> int:
    try:
        return parse_id(text)
    except InvalidValueError as exc:
        raise BadRequest(400, str(exc)) from None


class RunsHandler(_Handler):
    PARAMETERS = ("limit", "after", "type", "status")

    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        limit = self._limit(arguments)
        statuses: list[RunStatus] | None = None
        if arguments.get("status"):
            statuses = [parse_run_status(s) for s in arguments["status"].split(",") if s.strip()]
        items = self.api.source.api_runs(
            after=_int(arguments, "after"),
            limit=limit,
            run_types=_run_types(arguments),
            statuses=[str(s) for s in statuses] if statuses else None,
        )
        return self._page(items, arguments, limit)


class RunHandler(_Handler):
    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        run_id = _run_id(path[0])
        found = (
            self.api.source.api_quality(run_id)
            if len(path) > 1 and path[1]
            else self.api.source.api_run(run_id)
        )
        if found is None:
            raise BadRequest(404, f"there is no run {run_id}.")
        return found


class AnalysesHandler(_Handler):
    PARAMETERS = ("analysis", "version", "limit", "after")

    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        analysis = arguments.get("analysis")
        if not analysis:
            raise BadRequest(400, "give the analysis: /api/analyses?analysis=NAME&version=V.")
        version = _int(arguments, "version", low=1)
        if version is None:
            raise BadRequest(400, "give the analysis's version: version=V.")
        limit = self._limit(arguments)
        items = self.api.source.api_analyses(
            analysis=analysis[:64], version=version, after=_int(arguments, "after"), limit=limit
        )
        return self._page(items, arguments, limit)


class GoodRunsHandler(_Handler):
    PARAMETERS = ("limit", "after", "type", "since", "until")

    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        limit = self._limit(arguments)
        items = self.api.source.api_good_runs(
            after=_int(arguments, "after"),
            limit=limit,
            run_types=_run_types(arguments),
            since=_int(arguments, "since"),
            until=_int(arguments, "until"),
        )
        return self._page(items, arguments, limit)


class NotFoundHandler(_Handler):
    def answer(self, arguments: dict[str, str], *path: str) -> Any:
        raise BadRequest(
            404,
            "no such endpoint; the endpoints are /api/runs, /api/runs/RUN, /api/runs/RUN/quality, "
            "/api/analyses and /api/goodruns.",
        )


def api_routes(api: Api) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The API's routes, for ``pn.serve(extra_patterns=...)``."""
    shared = {"api": api}
    return [
        (r"/api/runs/?", RunsHandler, shared),
        (r"/api/runs/([^/]+)/?(quality)?/?", RunHandler, shared),
        (r"/api/analyses/?", AnalysesHandler, shared),
        (r"/api/goodruns/?", GoodRunsHandler, shared),
        (r"/api/.*", NotFoundHandler, shared),
    ]
