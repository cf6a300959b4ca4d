"""`dqm serve` refuses bad input with one line and exit code 2, before it serves anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DQM = str(Path(sys.executable).parent / "dqm")


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env["DQM_DATA_DIR"] = str(tmp_path / "data")
    subprocess.run([DQM, "init-db"], env=env, check=True, capture_output=True)
    return subprocess.run(
        [DQM, "serve", *args], check=False, env=env, capture_output=True, text=True, timeout=60
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read the credentials file"),
        ('["alice"]', "must hold a JSON object of users, each with a password"),
        ('{"alice": ""}', "must hold a JSON object of users, each with a password"),
        ('{"alice": {"password": "x", "role": "boss"}}', "user 'alice': 'boss' is not a role"),
        ('{"alice": {"password": "x", "colour": "red"}}', "each with a password"),
        ('{"alice": {"role": "expert"}}', "each with a password"),
    ],
)
def test_a_bad_credentials_file(tmp_path: Path, content: str, message: str) -> None:
    credentials = tmp_path / "users.json"
    credentials.write_text(content)
    done = _serve(tmp_path, "--port", str(_free_port()), "--credentials", str(credentials))
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_port_in_use_and_bad_options(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port))
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    for args in (
        ["--port", "0"],
        ["--refresh", "-1"],
        ["--credentials", "/nonexistent.json"],
        ["--num-procs", "0"],
        ["--allow-websocket-origin", "https://dqm.example.org/"],
    ):
        done = _serve(tmp_path, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args


#: A client id and secret, so that only the setting under test is wrong.
CLIENT = ["--oauth-key", "k", "--oauth-secret", "s"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--oauth-provider", "generic"], "needs --oauth-key and --oauth-secret"),
        (
            ["--oauth-provider", "github", *CLIENT, "--oauth-extra-params", "{not json"],
            "--oauth-extra-params is not JSON",
        ),
        (
            ["--oauth-provider", "generic", *CLIENT, "--oauth-extra-params", '{"TOKEN_URL": "x"}'],
            "needs AUTHORIZE_URL in --oauth-extra-params",
        ),
        (
            ["--oauth-provider", "github", *CLIENT, "--oauth-extra-params", '["a"]'],
            "must be a JSON object of strings",
        ),
        (
            ["--oauth-provider", "github", "--credentials", __file__],
            "give either --credentials or --oauth-provider",
        ),
    ],
)
def test_bad_oauth_settings(tmp_path: Path, args: list[str], message: str) -> None:
    done = _serve(tmp_path, "--port", str(_free_port()), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_oauth_provider(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--oauth-provider", "myspace")
    assert done.returncode == 2 and "myspace" in done.stderr and "Traceback" not in done.stderr


def test_a_sessions_role_comes_from_the_credentials_then_the_configuration() -> None:
    from app.main import session_role
    from dqm.config import load_settings
    from dqm.users import Role

    settings = load_settings(
        env={
            "DQM_ROLES": '{"bob": "expert", "group:dqm-shift": "shifter"}',
            "DQM_ROLES_CLAIM": "memberOf",
        }
    )
    from_file = {"alice": Role.ADMIN}

    def role(user, info=None, credential_roles=from_file):
        return session_role(user, info, credential_roles=credential_roles, settings=settings)

    assert role("alice") is Role.ADMIN  # the credentials file's role wins
    assert role("bob") is Role.EXPERT
    assert role("carol", {"memberOf": ["dqm-shift"]}) is Role.SHIFTER
    assert role("carol", {"memberOf": "dqm-shift"}) is Role.SHIFTER  # one group as a string
    assert role("carol", {"groups": ["dqm-shift"]}) is Role.VIEWER  # not the configured claim
    assert role("carol", {"memberOf": [3, None]}) is Role.VIEWER
    assert role("guest", {"memberOf": ["dqm-shift"]}) is Role.VIEWER
    assert role(None, None, None) is Role.VIEWER


def test_panel_serve_gives_a_logged_in_user_the_configured_role(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `panel serve app/main.py --basic-auth ...`: no credentials file of roles, the configuration
    from app.main import create_app
    from dqm.users import Role

    monkeypatch.setenv("DQM_ROLES", '{"bob": "expert"}')
    monkeypatch.setenv("DQM_DEFAULT_ROLE", "shifter")
    assert create_app(sqlite_database, user="bob", login=True).role is Role.EXPERT
    assert create_app(sqlite_database, user="carol", login=True).role is Role.SHIFTER
    assert create_app(sqlite_database, user="guest", login=True).role is Role.VIEWER
    assert create_app(sqlite_database, user="bob", login=False).role is Role.VIEWER
    assert create_app(sqlite_database, user="bob", login=True, role=Role.ADMIN).role is Role.ADMIN
