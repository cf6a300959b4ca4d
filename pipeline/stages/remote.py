"""Raw files on an XRootD server (``root://`` URLs, as JUNO's files arrive from EOS).

uproot reads them through fsspec (``fsspec-xrootd``); this module holds what uproot does not: the
file's size (a stat), the server's adler32 (a checksum query, which the server answers from its
own records or by reading the file itself, never through the network), whether the server answers
checksum queries at all (its configuration query), and one sequential copy to a local file with
the adler32 computed on the way, for a server that computes none.

Every failure is one sentence: :class:`~pipeline.stages.reading.FileNotReady` where waiting may
help (the file is missing or still growing, the server does not answer), so that the job waits and
tries again; :class:`RemoteError` otherwise.

The XRootD client's timeouts are shortened at import (a server that is down is reported within
seconds, not the client's default two minutes); the ``XRD_*`` environment variables still win.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from dqm import rawformat
from dqm.errors import DQMError

__all__ = [
    "COPY_CHUNK_BYTES",
    "RemoteError",
    "checksum",
    "copy_with_adler32",
    "serves_adler32",
    "size",
]

#: Bytes asked for per read of a sequential copy.
COPY_CHUNK_BYTES = 16 << 20

#: The XRootD client's settings (seconds, tries) unless the environment sets them.
_CLIENT_SETTINGS = {
    "ConnectionWindow": 5,
    "ConnectionRetry": 2,
    "RequestTimeout": 120,
    "StreamErrorWindow": 5,
}

# XRootD's error numbers (XProtocol.hh) and client error codes (XrdClStatus.hh) that mean
# "wait and try again" rather than "this will never work".
_NOT_FOUND = 3011  # kXR_NotFound
_UNSUPPORTED = (3013, 3024)  # kXR_Unsupported, kXR_QueryNotSupported (older servers)
_UNREACHABLE_CODES = {
    101,  # errRetry
    103,  # errSocketError
    104,  # errSocketTimeout
    105,  # errSocketDisconnected
    107,  # errStreamDisconnect
    108,  # errConnectionError
    206,  # errOperationExpired
    207,  # errOperationInterrupted
}


class RemoteError(DQMError):
    """An XRootD server refuses a request for good (permissions, a directory, ...)."""


_client: Any = None


def _xrootd() -> Any:
    """The XRootD client module, its timeouts set once."""
    global _client
    if _client is None:
        from XRootD import client

        put: Any = getattr(client, "EnvPutInt")  # noqa: B009 - untyped, not re-exported
        for name, value in _CLIENT_SETTINGS.items():
            if f"XRD_{name.upper()}" not in os.environ:
                put(name, value)
        _client = client
    return _client


def _server(url: str) -> tuple[str, str]:
    """The server part (``root://host:port``) and the absolute path of a URL."""
    host, port, path = rawformat.parse_xrootd_url(url)
    return f"root://{host}:{port}", path


def _fail(url: str, status: Any, doing: str) -> DQMError:
    """The one-sentence error of a failed request."""
    from pipeline.stages.reading import FileNotReady

    server, _ = _server(url)
    message = " ".join(str(status.message).split())
    if status.errno == _NOT_FOUND:
        return FileNotReady(f"{url} has not arrived (yet): the XRootD server has no such file.")
    if status.code in _UNREACHABLE_CODES or not status.errno:
        return FileNotReady(
            f"the XRootD server {server.removeprefix('root://')} does not answer ({doing} "
            f"{url}): {message}."
        )
    return RemoteError(f"the XRootD server refuses {doing} {url}: {message}.")


def size(url: str) -> int:
    """The file's size in bytes, from a stat.

    Raises:
        FileNotReady: no such file (yet), or the server does not answer.
        RemoteError: the server refuses (e.g. a directory, no permission).
    """
    server, path = _server(url)
    status, info = _xrootd().FileSystem(server).stat(path)
    if not status.ok:
        raise _fail(url, status, "the size of")
    flags = _xrootd().flags.StatInfoFlags
    if info.flags & (flags.IS_DIR | flags.OTHER):
        raise RemoteError(f"{url} is not a file on the XRootD server.")
    return int(info.size)


def serves_adler32(url: str) -> bool:
    """Whether the file's server answers adler32 checksum queries (asked of its configuration,
    which costs no read).

    Raises:
        FileNotReady: the server does not answer.
    """
    server, _ = _server(url)
    status, answer = _xrootd().FileSystem(server).query(_xrootd().flags.QueryCode.CONFIG, "chksum")
    if not status.ok:
        raise _fail(url, status, "the checksums of")
    # "0:adler32\n" (its algorithms, numbered) or the key itself when it computes none
    text = bytes(answer or b"").decode(errors="replace")
    names = {item.split(":", 1)[-1].strip().lower() for item in text.replace(",", "\n").split()}
    return "adler32" in names


def checksum(url: str) -> str | None:
    """The file's adler32 as the server gives it (8 lower-case hex digits), or None when the
    server answers no checksum query.

    Raises:
        FileNotReady: no such file (yet), or the server does not answer.
        RemoteError: another refusal.
    """
    server, path = _server(url)
    status, answer = _xrootd().FileSystem(server).query(_xrootd().flags.QueryCode.CHECKSUM, path)
    if not status.ok:
        if status.errno in _UNSUPPORTED:
            return None
        raise _fail(url, status, "the checksum of")
    text = bytes(answer or b"").rstrip(b"\x00").decode(errors="replace").split()
    if len(text) != 2 or text[0].lower() != "adler32":
        return None  # another algorithm: not comparable with the announced adler32
    return text[1].lower().rjust(8, "0")


def copy_with_adler32(url: str, destination: Path, chunk_bytes: int = COPY_CHUNK_BYTES) -> str:
    """Copy the file to ``destination`` in one sequential read, computing its adler32 on the way;
    the adler32 as 8 lower-case hex digits.

    Raises:
        FileNotReady: no such file (yet), or the server does not answer or goes away.
        RemoteError: another refusal.
    """
    file = _xrootd().File()
    status, _ = file.open(url)
    if not status.ok:
        raise _fail(url, status, "opening")
    value, offset = 1, 0
    try:
        with open(destination, "wb") as out:
            while True:
                status, data = file.read(offset, chunk_bytes)
                if not status.ok:
                    raise _fail(url, status, "reading")
                if not data:
                    break
                value = zlib.adler32(data, value)
                out.write(data)
                offset += len(data)
    finally:
        file.close()
    return f"{value & 0xFFFFFFFF:08x}"
