"""A dashboard session without a browser: Bokeh's websocket protocol, spoken from Python.

Each :class:`Session` opens a session of the dashboard the way a browser page does (a websocket
to ``/ws`` with the page's URL arguments and a session token), pulls the whole document, keeps a
replica of it, and applies every patch the server sends, as BokehJS does. A change made to the
replica (a slider's value) goes to the server as the browser's would. What the browser adds, the
drawing, is not done here: many sessions fit on one core, so that the server's latency under load
can be measured on a machine that has no core per shifter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

# Panel's Bokeh models must be registered to read the documents.
import panel.models
import panel.models.tabulator  # noqa: F401
from bokeh.client.websocket import WebSocketClientConnectionWrapper
from bokeh.document import Document
from bokeh.protocol import Protocol
from bokeh.protocol.receiver import Receiver
from bokeh.util.token import generate_jwt_token, generate_session_id
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

PROTOCOL = Protocol()


def _register_app_models() -> None:
    """The dashboard's own components (Panel makes their Bokeh models when first shown, under
    names it numbers): one of each made here registers the models under the server's names."""
    from app.alarmsview import AlarmSignal

    signal: Any = AlarmSignal
    signal(count=0).get_root()


_register_app_models()


class Session:
    """One dashboard session: :meth:`open` it, change its :attr:`document`, :meth:`wait_for`."""

    def __init__(self) -> None:
        self.document = Document()
        self._socket: WebSocketClientConnectionWrapper | None = None
        self._receiver = Receiver(PROTOCOL)
        self._sending: set[asyncio.Task[Any]] = set()

    async def open(self, address: str, arguments: dict[str, str]) -> Session:
        """Connect to the server at ``address`` (``host:port``) with the page's URL arguments."""
        token = generate_jwt_token(generate_session_id())
        request = HTTPRequest(f"ws://{address}/ws?{urlencode(arguments)}")
        socket = await websocket_connect(
            request, subprotocols=["bokeh", token], max_message_size=512 * 2**20
        )
        self._socket = WebSocketClientConnectionWrapper(socket)
        ack = await self._receive()
        if ack.msgtype != "ACK":
            raise ConnectionError(f"the server answered {ack.msgtype} instead of ACK")
        await PROTOCOL.create("PULL-DOC-REQ").send(self._socket)
        reply = await self._receive()
        reply.push_to_document(self.document)
        self.document.on_change(self._send_change)
        return self

    def models(self, type_name: str, where: Callable[[Any], bool] = lambda m: True) -> list[Any]:
        """The document's models of a Bokeh type (by its class name) that satisfy ``where``."""
        return [m for m in self.document.models if type(m).__name__ == type_name and where(m)]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Apply the server's patches to the document until ``predicate()`` holds."""
        while not predicate():
            message = await self._receive()
            if message.msgtype == "PATCH-DOC":
                message.apply_to_document(self.document, self)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send_change(self, event: Any) -> None:
        if getattr(event, "setter", None) is self or self._socket is None:
            return  # a change the server made: nothing to send back
        task = asyncio.get_running_loop().create_task(
            PROTOCOL.create("PATCH-DOC", [event]).send(self._socket)
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _receive(self) -> Any:
        assert self._socket is not None
        while True:
            fragment = await self._socket._socket.read_message()
            if fragment is None:
                raise ConnectionError("the server closed the session's websocket")
            message = await self._receiver.consume(fragment)
            if message is not None:
                return message


async def concurrent_cut_changes(
    address: str,
    run_id: int,
    n_sessions: int,
    fractions: tuple[float, ...],
    cpu: Callable[[], float] = lambda: 0.0,
) -> tuple[list[float], float]:
    """``n_sessions`` sessions on the PMT map of ``run_id``; in each round all of them move the
    dead cut to the next of ``fractions`` at once.

    Returns:
        The seconds from each change to the new classes of all 17,612 PMTs in that session's
        replica, and how much ``cpu()`` (the server's CPU seconds) grew during the changes.
    """
    arguments = {"run": str(run_id), "tab": "pmt"}
    sessions = [await Session().open(address, arguments) for _ in range(n_sessions)]
    latencies: list[float] = []
    try:
        await asyncio.sleep(1.0)  # the sessions' own start-up work is over

        async def move(session: Session, fraction: float) -> float:
            [source] = session.models("ColumnDataSource", lambda m: "pmt_class" in m.data)
            [slider] = session.models("Slider", lambda m: m.title.startswith("Dead"))
            before = int((source.data["pmt_class"] == 0).sum())
            t0 = time.perf_counter()
            slider.value = slider.start + fraction * (slider.end - slider.start)
            await session.wait_for(lambda: int((source.data["pmt_class"] == 0).sum()) != before)
            return time.perf_counter() - t0

        cpu_start = cpu()
        for fraction in fractions:
            latencies += await asyncio.gather(*(move(s, fraction) for s in sessions))
        cpu_s = cpu() - cpu_start
    finally:
        for session in sessions:
            session.close()
    return latencies, cpu_s
