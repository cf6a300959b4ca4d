"""``dqm serve``: the dashboard on a web server (a command that this package adds to ``dqm``)."""

from __future__ import annotations

import logging
from typing import Any

import click

log = logging.getLogger("dqm.dashboard")


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
@click.option("--show/--no-show", default=False, help="Open a browser.")
@click.pass_obj
def serve(app: Any, port: int, address: str, refresh_s: float, show: bool) -> None:
    """Serve the dashboard: recent runs, run pages, the PMT map and the jobs."""
    import socket

    from dqm.errors import InvalidValueError

    database_url = app.database()  # reachable and migrated, or one clear line
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise InvalidValueError(
                f"cannot listen on {address}:{port}: {exc.strerror or exc} (another server there?)."
            ) from None

    import panel as pn

    from app.main import create_app

    pn.extension("tabulator", sizing_mode="stretch_width", notifications=True)

    def session() -> Any:
        try:
            return create_app(database_url, refresh_s).servable_template()
        except Exception:  # one page must never show a traceback to a shifter
            log.exception("the dashboard could not be built for a session")
            return pn.pane.Alert(
                "The dashboard could not be built: the server's log says why. "
                "Reload the page to try again.",
                alert_type="danger",
            )

    _quiet_closed_connections()
    click.echo(f"DQM dashboard on http://{address}:{port}/  (Ctrl-C to stop)", err=True)
    pn.serve(
        {"/": session},
        port=port,
        address=address,
        show=show,
        title="DQM",
        websocket_origin=[f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"],
        print_url=False,
    )


def _quiet_closed_connections() -> None:
    """A browser that goes away while the server writes to it is routine, not an error: without
    this, every closed tab could leave a "Task exception was never retrieved" traceback of
    tornado's in the log."""
    import asyncio

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), WebSocketClosedError | StreamClosedError):
            log.debug("a browser closed its connection while being written to")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
