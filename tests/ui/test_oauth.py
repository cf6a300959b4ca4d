"""Logging in through an OAuth provider: the dashboard sends the browser to the provider, takes
the code it comes back with, exchanges it for a token and asks the provider who the user is
(OAuth 2.0 authorization code grant). The provider here is a small one of the test's own, on a
port of its own, that logs in one user without asking; what is tested is the dashboard's side:
`dqm serve --oauth-provider generic` with Panel's OAuth handlers, cookies and all."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from uihelpers import copy_installation, dashboard

import demo
from dqm.db import queries
from dqm.db.session import transaction

pytestmark = pytest.mark.slow

CLIENT_ID = "dqm-dashboard"
CLIENT_SECRET = secrets.token_urlsafe(16)
USER = "alice@example.org"


class Provider(ThreadingHTTPServer):
    """An OAuth 2.0 provider that logs in ``USER``: /authorize, /token, /userinfo. It checks
    what a provider checks (the client's id and secret, the code, the token) and counts the
    requests it answered."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProviderHandler)
        self.codes: set[str] = set()
        self.tokens: set[str] = set()
        self.answered: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/authorize":
            if query.get("client_id") != CLIENT_ID or "redirect_uri" not in query:
                return self._json(400, {"error": "invalid_request"})
            code = secrets.token_urlsafe(8)
            self.server.codes.add(code)
            self.server.answered.append("authorize")
            back = {"code": code} | ({"state": query["state"]} if "state" in query else {})
            separator = "&" if "?" in query["redirect_uri"] else "?"
            self.send_response(302)
            self.send_header("Location", query["redirect_uri"] + separator + urlencode(back))
            self.end_headers()
        elif url.path == "/userinfo":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.server.tokens:
                return self._json(401, {"error": "invalid_token"})
            self.server.answered.append("userinfo")
            self._json(200, {"email": USER, "name": "Alice", "groups": ["physics", "dqm-experts"]})
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlparse(self.path).path != "/token":
            return self._json(404, {"error": "not_found"})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._json(401, {"error": "invalid_client"})
        if form.get("grant_type") != "authorization_code" or form.get("code") not in (
            self.server.codes
        ):
            return self._json(400, {"error": "invalid_grant"})
        self.server.codes.discard(form["code"])  # a code is good once
        token = secrets.token_urlsafe(16)
        self.server.tokens.add(token)
        self.server.answered.append("token")
        self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def installation(demo_data, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """A copy of the demo installation: the logged-in user changes it."""
    return copy_installation(demo_data.env, tmp_path_factory.mktemp("oauth") / "data")


@pytest.fixture(scope="module")
def server(installation, provider: Provider) -> Iterator[tuple[str, Path]]:
    extra = {
        "AUTHORIZE_URL": f"{provider.url}/authorize",
        "TOKEN_URL": f"{provider.url}/token",
        "USER_URL": f"{provider.url}/userinfo",
        "USER_KEY": "email",
    }
    # the provider's group claim makes the user an expert
    env = dict(
        installation[0],
        DQM_OAUTH_SECRET=CLIENT_SECRET,
        DQM_ROLES=json.dumps({"group:dqm-experts": "expert"}),
    )
    options = (
        "--oauth-provider",
        "generic",
        "--oauth-key",
        CLIENT_ID,
        "--oauth-extra-params",
        json.dumps(extra),
        "--refresh",
        "0",
    )
    with dashboard(env, *options, name="oauth-server") as served:
        yield served


def test_anonymous_visitors_read_without_the_provider(server, provider: Provider, page) -> None:
    url, _log = server
    page.goto(f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
    page.get_by_text("Log in").first.wait_for()
    page.get_by_text("Dead", exact=False).first.wait_for()
    assert page.get_by_text("Save these cuts").count() == 0
    assert "authorize" not in provider.answered


def test_logging_in_through_the_provider(server, provider: Provider, page, installation) -> None:
    url, _log = server
    page.goto(f"{url}/login")
    page.wait_for_load_state("networkidle")
    assert provider.answered[-3:] == ["authorize", "token", "userinfo"]
    page.goto(f"{url}/?run={demo.FAULTY_RUN}&tab=pmt")
    page.get_by_text(f"Logged in as {USER}").first.wait_for()
    page.get_by_text("(expert)").first.wait_for()
    page.get_by_text("Save these cuts as the default of physics runs").first.click()
    page.get_by_text("Saved as the default cuts of physics runs.").first.wait_for()
    with transaction(installation[1]) as session:
        assert queries.cut_defaults(session, run_type="physics").saved_by == USER
