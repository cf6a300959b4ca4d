"""``dqm serve``: the dashboard on a web server (a command that this package adds to ``dqm``)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import click

from dqm.users import Role, parse_role

log = logging.getLogger("dqm.dashboard")

#: The OAuth providers that Panel can log in through.
OAUTH_PROVIDERS = (
    "generic",
    "github",
    "gitlab",
    "google",
    "azure",
    "azurev2",
    "okta",
    "auth0",
    "bitbucket",
)


@click.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=5006, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--refresh",
    "refresh_s",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between refreshes of the page shown (0: never).",
)
@click.option(
    "--session-lifetime",
    "session_lifetime_s",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="Seconds after a browser has gone until its session and its memory are dropped.",
)
@click.option(
    "--credentials",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    default=None,
    help='JSON file of users with their passwords and roles ({"alice": {"password": "...", '
    '"role": "expert"}}; a password alone: a shifter): they may log in and write as their '
    "role allows; everyone else reads.",
)
@click.option(
    "--oauth-provider",
    type=click.Choice(OAUTH_PROVIDERS),
    default=None,
    envvar="DQM_OAUTH_PROVIDER",
    help="Log in through this OAuth provider instead of a credentials file ('generic': the "
    "provider's AUTHORIZE_URL, TOKEN_URL and USER_URL in --oauth-extra-params).",
)
@click.option(
    "--oauth-key", envvar="DQM_OAUTH_KEY", default=None, help="The OAuth client id of the DQM."
)
@click.option(
    "--oauth-secret",
    envvar="DQM_OAUTH_SECRET",
    default=None,
    help="The OAuth client secret (better given as DQM_OAUTH_SECRET than on the command line).",
)
@click.option(
    "--oauth-redirect-uri",
    envvar="DQM_OAUTH_REDIRECT_URI",
    default=None,
    help="The address of the dashboard's /login page as the provider knows it "
    "(default: the address the browser used).",
)
@click.option(
    "--oauth-extra-params",
    envvar="DQM_OAUTH_EXTRA_PARAMS",
    default=None,
    help='JSON object of the provider\'s settings, e.g. {"AUTHORIZE_URL": "...", "TOKEN_URL": '
    '"...", "USER_URL": "...", "USER_KEY": "email"} for a generic provider.',
)
@click.option(
    "--num-procs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes that serve the dashboard on the one port (a browser's page and its "
    "websocket may reach different ones: each builds the session it is asked for).",
)
@click.option(
    "--allow-websocket-origin",
    "origins",
    multiple=True,
    envvar="DQM_ALLOW_WEBSOCKET_ORIGIN",
    metavar="HOST[:PORT]",
    help="A further address browsers reach the dashboard at, as behind a proxy "
    "(dqm.example.org, dqm.example.org:8443); repeat for several (in the environment variable: "
    "separated by spaces).",
)
@click.option("--show/--no-show", default=False, help="Open a browser.")
@click.pass_obj
def serve(
    cli_ctx: Any,
    port: int,
    address: str,
    refresh_s: float,
    session_lifetime_s: float,
    credentials: str | None,
    oauth_provider: str | None,
    oauth_key: str | None,
    oauth_secret: str | None,
    oauth_redirect_uri: str | None,
    oauth_extra_params: str | None,
    num_procs: int,
    origins: tuple[str, ...],
    show: bool,
) -> None:
    """Serve the dashboard: recent runs, run pages, the PMT map and the jobs."""
    import socket

    from dqm.errors import InvalidValueError

    extra_origins = _origins(origins)
    database_url = cli_ctx.database()  # reachable and migrated, or one clear line
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise InvalidValueError(
                f"cannot listen on {address}:{port}: {exc.strerror or exc} (another server there?)."
            ) from None

    import panel as pn

    from app.main import create_app

    login: dict[str, Any] = {}
    credential_roles: dict[str, Role] | None = None
    if credentials is not None and oauth_provider is not None:
        raise InvalidValueError(
            "give either --credentials or --oauth-provider: the dashboard has one way to log in."
        )
    if credentials is not None:
        login, credential_roles = _login_options(credentials)
    elif oauth_provider is not None:
        login = _oauth_options(
            oauth_provider, oauth_key, oauth_secret, oauth_redirect_uri, oauth_extra_params
        )

    pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)

    from app.main import apps_in_memory, session_role
    from app.metrics import DashboardMetrics
    from app.source import Source

    settings = cli_ctx.settings
    shared_source = Source(database_url, checks_file=settings.checks_file)
    dashboard_metrics = DashboardMetrics(shared_source)

    quieted: set[int] = set()  # the forked processes whose loop is quieted

    def session() -> Any:
        if num_procs > 1 and os.getpid() not in quieted:
            import asyncio

            quieted.add(os.getpid())
            _quiet_closed_connections(asyncio.get_event_loop())
        pn.state.on_session_destroyed(_session_dropped)
        try:
            user = pn.state.user
            role = session_role(
                user,
                pn.state.user_info,
                credential_roles=credential_roles,
                settings=cli_ctx.settings,
            )
            page = create_app(
                database_url,
                refresh_s,
                user=user,
                role=role,
                login=bool(login),
                checks_file=cli_ctx.settings.checks_file,
                page_timer=dashboard_metrics.page_built,
            ).servable_template()
            log.info(
                "a session opened: %d dashboard sessions in memory", apps_in_memory(collect=False)
            )
            if num_procs > 1:
                return _served_locally(page)
            return page
        except Exception:  # one page must never show a traceback to a shifter
            log.exception("the dashboard could not be built for a session")
            return pn.pane.Alert(
                "The dashboard could not be built: the server's log says why. "
                "Reload the page to try again.",
                alert_type="danger",
            )

    if num_procs == 1:
        _quiet_closed_connections()
    _no_mathjax()
    # What is loaded by now (Panel, Bokeh, pandas, the app's modules) stays for the server's
    # life: out of the garbage collector's sight, a collection only walks the sessions' objects
    # (a full one took 150 ms otherwise, stopping every session's updates meanwhile).
    import gc

    gc.collect()
    gc.freeze()
    click.echo(
        f"DQM dashboard on http://{address}:{port}/, its JSON API under /api/, /metrics and "
        "/health  (Ctrl-C to stop)",
        err=True,
    )
    from app.api import Api, api_routes
    from app.metrics import metrics_routes

    api = Api(shared_source, token=settings.api_token, per_minute=settings.api_rate)
    if num_procs > 1:
        from dqm.db.session import dispose_engines

        dispose_engines()  # each process opens its own connections: none cross the fork
        _stop_together()
    pn.serve(
        {"/": session},
        extra_patterns=[*api_routes(api), *metrics_routes(dashboard_metrics)],
        port=port,
        address=address,
        show=show and num_procs == 1,
        title="DQM",
        num_procs=num_procs,
        websocket_origin=[
            f"{address}:{port}",
            f"localhost:{port}",
            f"127.0.0.1:{port}",
            *extra_origins,
        ],
        print_url=False,
        unused_session_lifetime_milliseconds=int(session_lifetime_s * 1000),
        check_unused_sessions_milliseconds=int(max(1.0, min(session_lifetime_s / 2, 17.0)) * 1000),
        **login,
    )


def _stop_together() -> None:
    """SIGTERM to the first process of ``--num-procs`` stops the processes it forked too (they
    would go on serving without it otherwise); a forked one that gets it stops alone."""
    import signal

    def stop(signum: int, _frame: Any) -> None:
        import psutil

        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                child.terminate()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop)


def _served_locally(page: Any) -> None:
    """Puts ``page`` in the session's document with its stylesheets served by this server.

    Panel points them at this server when it renders a session's HTML page, and at its CDN
    otherwise. With several processes on one port, a page's websocket can reach a process that
    did not render the page, which then builds the session anew: without this, its stylesheets
    would come from the CDN (none, on a network without the internet)."""
    import panel as pn
    from panel.io.resources import LOCAL_DIST, patch_model_css

    doc = page.server_doc(pn.state.curdoc)
    for root in doc.roots:
        patch_model_css(root, dist_url=LOCAL_DIST)


def _origins(given: tuple[str, ...]) -> list[str]:
    """The further websocket origins, each ``host`` or ``host:port`` (split at spaces too).

    Raises:
        InvalidValueError: one that is not a host name with an optional port, in one sentence.
    """
    import re

    from dqm.errors import InvalidValueError

    origins = [item for text in given for item in text.split()]
    for origin in origins:
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?|\*", origin):
            raise InvalidValueError(
                f"--allow-websocket-origin {origin!r} is not HOST or HOST:PORT "
                "(dqm.example.org, dqm.example.org:8443)."
            )
    return origins


def _no_mathjax() -> None:
    """The pages have no TeX: without this, Panel sends every browser Bokeh's MathJax bundle
    (1.8 MB of JavaScript to parse, a quarter of what a page loads) as soon as a page holds a
    Markdown or HTML pane."""
    from panel.io import resources

    if hasattr(resources, "_panel_use_mathjax"):
        resources._panel_use_mathjax = lambda roots: False


def _quiet_closed_connections(loop: Any = None) -> None:
    """A browser that goes away while the server writes to it is routine, not an error: without
    this, every closed tab could leave a "Task exception was never retrieved" traceback of
    tornado's in the log. On a new event loop made current, or on ``loop`` (the running one of a
    process forked to serve: a loop made before the fork cannot serve after it)."""
    import asyncio

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), WebSocketClosedError | StreamClosedError):
            log.debug("a browser closed its connection while being written to")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


#: Seconds from a session's drop to the collection of its memory (one for all the sessions that
#: are dropped in that time).
RELEASE_DELAY_S = 0.5
_release_scheduled = False


def _session_dropped(_session_context: Any) -> None:
    global _release_scheduled
    if not _release_scheduled:
        from tornado.ioloop import IOLoop

        _release_scheduled = True
        IOLoop.current().call_later(RELEASE_DELAY_S, _release_memory)


def _release_memory() -> None:
    """After sessions are dropped: collect their objects and give the freed memory back to the
    system (glibc keeps freed heap memory for reuse otherwise, so the server would look as if it
    had kept every session it ever served)."""
    import gc

    from dqm import memory

    global _release_scheduled
    _release_scheduled = False
    gc.collect()
    memory.trim()


def _cookie_secret() -> str:
    """The key that signs the login cookies: ``DQM_COOKIE_SECRET`` (logins then outlive a restart
    of the server, and several servers can share them), or one for this run of the server."""
    import os
    import secrets

    return os.environ.get("DQM_COOKIE_SECRET") or secrets.token_urlsafe(32)


def _oauth_options(
    provider: str,
    key: str | None,
    secret: str | None,
    redirect_uri: str | None,
    extra_params: str | None,
) -> dict[str, Any]:
    """Panel's OAuth login through ``provider``, with anonymous reading allowed."""
    import json

    from dqm.errors import InvalidValueError

    missing = [
        option for option, given in (("--oauth-key", key), ("--oauth-secret", secret)) if not given
    ]
    if missing:
        raise InvalidValueError(
            f"logging in through {provider} needs {' and '.join(missing)} "
            "(the client id and secret that the provider gave the DQM)."
        )
    try:
        extra = json.loads(extra_params) if extra_params else {}
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"--oauth-extra-params is not JSON: {exc}.") from None
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise InvalidValueError(
            '--oauth-extra-params must be a JSON object of strings, {"TOKEN_URL": "https://..."}.'
        )
    if provider == "generic":
        needed = [name for name in ("AUTHORIZE_URL", "TOKEN_URL") if not extra.get(name)]
        if needed:
            raise InvalidValueError(
                f"a generic OAuth provider needs {' and '.join(needed)} in --oauth-extra-params."
            )
    options: dict[str, Any] = {
        "oauth_provider": provider,
        "oauth_key": key,
        "oauth_secret": secret,
        "oauth_extra_params": extra,
        "cookie_secret": _cookie_secret(),
        "oauth_optional": True,
    }
    if redirect_uri:
        options["oauth_redirect_uri"] = redirect_uri
    return options


def _login_options(credentials: str) -> tuple[dict[str, Any], dict[str, Role]]:
    """Panel's basic authentication on the credentials file, with anonymous reading allowed, and
    the roles the file gives its users.

    The file holds a JSON object: ``{"alice": {"password": "...", "role": "expert"}, "bob":
    "..."}``; a user given by a password alone is a shifter.
    """
    import json
    import os

    from dqm.errors import DQMError, InvalidValueError

    try:
        users = json.loads(Path(credentials).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidValueError(f"cannot read the credentials file {credentials}: {exc}") from None
    shape = (
        f"{credentials} must hold a JSON object of users, each with a password or with a "
        '{"password": "...", "role": "shifter|expert|admin|viewer"}, '
        '{"alice": {"password": "a long password", "role": "expert"}}.'
    )
    if not isinstance(users, dict) or not users:
        raise InvalidValueError(shape)
    passwords: dict[str, str] = {}
    roles: dict[str, Role] = {}
    for name, entry in users.items():
        password: object
        if isinstance(entry, str):
            password, role = entry, Role.SHIFTER
        elif isinstance(entry, dict) and set(entry) <= {"password", "role"}:
            password = entry.get("password")
            try:
                role = parse_role(entry.get("role", "shifter"))
            except DQMError as exc:
                raise InvalidValueError(f"{credentials}, user {name!r}: {exc}") from None
        else:
            raise InvalidValueError(shape)
        if not isinstance(name, str) or not name or not isinstance(password, str) or not password:
            raise InvalidValueError(shape)
        passwords[name], roles[name] = password, role
    if os.stat(credentials).st_mode & 0o077:
        log.warning("%s can be read by other users of this machine: chmod 600 it", credentials)
    templates = Path(__file__).resolve().parent / "templates"
    options = {
        "basic_auth": passwords,
        "cookie_secret": _cookie_secret(),
        "oauth_optional": True,
        # pages of our own: Panel's load their logo from a CDN, which a control room may not reach
        "basic_login_template": str(templates / "login.html"),
        "logout_template": str(templates / "logout.html"),
    }
    return options, roles
