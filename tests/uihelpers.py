"""Serving the dashboard for the browser tests: `dqm serve` on a free port, its log kept."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def dashboard(
    env: dict[str, str], *options: str, name: str = "server"
) -> Iterator[tuple[str, Path]]:
    """`dqm -v serve` with ``options``; yields its URL and its log (kept under ARTIFACTS), and
    checks when it stops that the log holds no traceback."""
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dqm"),
                "-v",
                "serve",
                "--port",
                str(port),
                *options,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(process, port, log, timeout_s=60)
            yield f"http://127.0.0.1:{port}", log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def wait_for_port(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 20
) -> None:
    """Until ``process`` listens on ``port`` of 127.0.0.1; its log's end if it stops or is late."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text()[-2000:]) from None
            time.sleep(0.1)


def drag_first_slider(page: Any, fraction: float) -> None:
    """Drags the page's first range slider (the PMT map's dead cut) to ``fraction`` of its bar."""
    bar = page.locator(".noUi-target").first.bounding_box()
    handle = page.locator(".noUi-handle").first.bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(bar["x"] + bar["width"] * fraction, bar["y"] + bar["height"] / 2, steps=5)
    page.mouse.up()


def copy_installation(env: dict[str, str], directory: Path) -> tuple[dict[str, str], str]:
    """A copy of an installation's database in ``directory``, for a test that changes it: the
    environment that points at the copy, and the copy's URL."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(env["DQM_DATA_DIR"]) / "dqm.sqlite", directory / "dqm.sqlite")
    return dict(env, DQM_DATA_DIR=str(directory)), f"sqlite:///{directory / 'dqm.sqlite'}"
