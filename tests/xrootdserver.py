"""A real XRootD server for the tests: Debian's ``xrootd`` (package ``xrootd-server``) serving a
directory on a free port of 127.0.0.1, stopped and started again at will::

    with served_directory() as directory, xrootd_server(directory) as server:
        ...  # files under `directory` are at server.url("run/file.root")
        server.stop()  # the port stays reserved; server.start() brings it back

``checksums=True`` configures ``xrootd.chksum adler32``, so that the server answers checksum
queries, as EOS does; without it the server computes none. The server refuses to run as root: as
root it is started with ``-R nobody``, so the served directory must be readable by that user
(:func:`served_directory` makes one that is). Where the program is missing, the test is skipped,
or fails under ``DQM_REQUIRE_SERVICES=1`` (CI installs ``xrootd-server``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from notifyservers import free_port
from services import unavailable

XROOTD = shutil.which("xrootd") or "/usr/bin/xrootd"


@contextmanager
def served_directory() -> Iterator[Path]:
    """A new directory that the server's user may read (the tests' own temporary directories are
    private to root), removed after."""
    directory = Path(tempfile.mkdtemp(prefix="dqm-xrootd-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class XRootDServer:
    """One ``xrootd`` process serving ``directory`` on ``port``."""

    def __init__(self, directory: Path, port: int, checksums: bool) -> None:
        self.directory, self.port, self.checksums = directory, port, checksums
        self.home = Path(tempfile.mkdtemp(prefix="dqm-xrootd-home-"))
        self.home.chmod(0o777)  # its admin and log files, written as nobody
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, relative: str | Path = "") -> str:
        """The ``root://`` URL of a path under the served directory."""
        return f"root://{self.address}//{str(relative).lstrip('/')}"

    def start(self) -> None:
        lines = [
            f"xrd.port {self.port}",
            "all.export /",
            f"oss.localroot {self.directory}",
            f"all.adminpath {self.home / 'admin'}",
            f"all.pidpath {self.home / 'admin'}",
        ]
        if self.checksums:
            lines.append("xrootd.chksum adler32")
        config = self.home / "xrootd.cfg"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o644)
        command = [XROOTD, "-c", str(config), "-l", str(self.home / "xrootd.log"), "-n", "dqm"]
        if os.geteuid() == 0:
            command[1:1] = ["-R", "nobody"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.home
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"xrootd exited with {self.process.returncode}: {error}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"xrootd did not listen on {self.address} within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@contextmanager
def xrootd_server(directory: Path, *, checksums: bool = True) -> Iterator[XRootDServer]:
    """A running XRootD server of ``directory`` (see the module's docstring)."""
    if not Path(XROOTD).is_file():
        unavailable("xrootd", "the program xrootd is not installed (Debian: xrootd-server)")
    server = XRootDServer(directory, free_port(), checksums)
    try:
        server.start()
        yield server
    finally:
        server.close()
