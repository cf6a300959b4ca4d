"""The JSON API of the dashboard on a port of its own (the tests of the API and of bad input)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import tornado.httpserver
import tornado.web
from notifyservers import free_port

from app.api import Api, api_routes


class Served:
    """An API (or other tornado routes) on a port of its own, in a thread with its own event
    loop."""

    def __init__(self, api: Api | list[Any]) -> None:
        routes = api_routes(api) if isinstance(api, Api) else api
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        started = threading.Event()

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            app = tornado.web.Application(routes)
            self.server = tornado.httpserver.HTTPServer(app)
            self.server.listen(self.port, "127.0.0.1")
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read()), answer.headers
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), error.headers

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
