"""The raw-file format shared by the DAQ simulator (which writes it) and the pipeline (which reads it).

One ROOT file holds one sequence number of one run, ZSTD-compressed:

- TTree ``events``: ``event_id`` (uint64), ``trigger_time`` (int64, ns since run start),
  ``trigger_type`` (int8, see :data:`TRIGGER_TYPES`), and the jagged hits ``nhits`` (int32),
  ``hits_pmt_id`` (int32), ``hits_adc`` (float32, pedestal-subtracted charge in ADC counts),
  ``hits_tdc`` (float32, ns in the 1 µs readout window).
- TObjString ``run_info``: JSON with ``run_id``, ``seq``, ``run_type``, ``detector``, ``start_time``
  (ISO 8601, UTC), ``source``, ``source_z_mm``, ``trigger_rate_hz``, ``software_version``.

Simulation truth never goes into a raw file: it lives in a sidecar under ``data_dir/truth``.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from dqm.errors import DQMError

EVENTS_TREE = "events"
RUN_INFO_KEY = "run_info"

#: Branches of the events tree and their types, as written and as required when reading.
EVENT_BRANCHES: dict[str, np.dtype] = {
    "event_id": np.dtype(np.uint64),
    "trigger_time": np.dtype(np.int64),
    "trigger_type": np.dtype(np.int8),
}
HIT_FIELDS: dict[str, np.dtype] = {
    "pmt_id": np.dtype(np.int32),
    "adc": np.dtype(np.float32),
    "tdc": np.dtype(np.float32),
}
#: The jagged hit branches as they appear in the file.
HIT_BRANCHES = {f"hits_{name}": dtype for name, dtype in HIT_FIELDS.items()}
HIT_COUNTER = "nhits"

#: Trigger types.
TRIGGER_GLOBAL = 1  # multiplicity trigger of the central detector
TRIGGER_LASER = 2  # laser flasher of the calibration system
TRIGGER_RANDOM = 3  # periodic random trigger (dark noise, pedestals)
TRIGGER_TYPES = {TRIGGER_GLOBAL: "global", TRIGGER_LASER: "laser", TRIGGER_RANDOM: "random"}


class RawFormatError(DQMError):
    """A file is not a raw file of the DQM (not ROOT, no events tree, a branch missing or mistyped)."""


def check_events_tree(file: Any, path: str | Path) -> Any:
    """The ``events`` tree of an open uproot file, after checking every documented branch and type.

    Raises:
        RawFormatError: one sentence naming what is missing or wrong.
    """
    name = location_name(path)
    try:
        tree = file[EVENTS_TREE]
    except Exception:  # noqa: BLE001 - uproot raises several kinds for a missing or odd key
        keys = ", ".join(sorted({k.split(";")[0] for k in file.keys(recursive=False)})) or "nothing"
        raise RawFormatError(
            f"{name} is not a DQM raw file: it has no tree '{EVENTS_TREE}' (it holds {keys})."
        ) from None
    if not hasattr(tree, "branches"):
        raise RawFormatError(
            f"{name} is not a DQM raw file: '{EVENTS_TREE}' is a {type(tree).__name__}, not a TTree."
        )
    branches = {branch.name: branch for branch in tree.branches}
    wanted = {**EVENT_BRANCHES, **HIT_BRANCHES}
    for branch_name, dtype in wanted.items():
        branch = branches.get(branch_name)
        if branch is None:
            raise RawFormatError(
                f"{name} is not a DQM raw file: tree '{EVENTS_TREE}' lacks the branch '{branch_name}'."
            )
        interpretation = branch.interpretation
        found = getattr(getattr(interpretation, "content", interpretation), "to_dtype", None)
        jagged = hasattr(interpretation, "content")
        if (
            found is None
            or np.dtype(found).newbyteorder("=") != dtype
            or jagged != (branch_name in HIT_BRANCHES)
        ):
            raise RawFormatError(
                f"{name} is not a DQM raw file: branch '{branch_name}' is {interpretation}, "
                f"expected {'jagged ' if branch_name in HIT_BRANCHES else ''}{dtype}."
            )
    _check_baskets(tree, _file_size(file, path), name)
    return tree


def _file_size(file: Any, path: str | Path) -> int | None:
    """The size of an open file: a local file's on disk, a remote one's as its source knows it."""
    if is_remote(str(path)):
        size = getattr(getattr(getattr(file, "file", None), "source", None), "num_bytes", None)
        return int(size) if isinstance(size, int) else None
    try:
        return Path(path).stat().st_size
    except OSError:
        return None  # not a file on disk: the reader will find out


def _check_baskets(tree: Any, size: int | None, name: str) -> None:
    """A file cut short (a truncated transfer) still opens; its baskets then point past its end."""
    if size is None:
        return
    for branch in tree.branches:
        n = branch.num_baskets
        if not n:
            continue
        seeks = np.asarray(branch.member("fBasketSeek")[:n], dtype=np.int64)
        sizes = np.asarray(branch.member("fBasketBytes")[:n], dtype=np.int64)
        end = int((seeks + sizes).max())
        if end > size:
            raise RawFormatError(
                f"{name} is truncated: branch '{branch.name}' has data up to byte {end}, the file ends at {size}."
            )


def raw_file_name(run_id: int, seq: int) -> str:
    """File name of sequence ``seq`` of run ``run_id``: ``<run>.<seq>.root``."""
    return f"{run_id}.{seq}.root"


def raw_file_path(raw_dir: Path, run_id: int, seq: int) -> Path:
    """Where a raw file lives under a raw root: ``<raw_dir>/<run>/<run>.<seq>.root``."""
    return raw_dir / str(run_id) / raw_file_name(run_id, seq)


#: URL schemes of raw files read over the network, through XRootD (as from EOS).
REMOTE_SCHEMES = ("root", "xroot")
#: The XRootD port a URL without one means.
XROOTD_PORT = 1094

#: A raw file's location: a local path, or a ``root://`` URL (a string).
RawLocation = Path | str

_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/:?#@\s]*)(?::(?P<port>[^/]*))?(?P<path>/.*)?",
    re.DOTALL,
)
#: The head of a URL in a list of raw roots: scheme, host and port (which hold ``:``).
_URL_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/:]*(?::\d*)?")


def is_remote(location: RawLocation) -> bool:
    """Whether a raw file's location is a URL (read over the network), not a local path."""
    return isinstance(location, str) and "://" in location


def location_name(location: RawLocation) -> str:
    """The file name of a location (its last component), for messages."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def split_raw_roots(text: str) -> list[str]:
    """The raw roots of a ``DQM_RAW_ROOTS`` value: entries separated by ``:``.

    A ``:`` that belongs to a URL's scheme (``root://``) or port (``host:1094``) separates
    nothing, so a single URL, a list of URLs and local paths, and a list of local paths all
    parse: ``/data/raw:root://eos.example.org:1094//eos/juno/raw`` gives the two. (A path cannot
    hold ``:`` here; the configuration file's list can.) Empty entries are dropped.
    """
    entries, i = [], 0
    while i <= len(text):
        head = _URL_HEAD.match(text, i)
        stop = text.find(":", head.end() if head else i)
        stop = len(text) if stop < 0 else stop
        entries.append(text[i:stop].strip())
        i = stop + 1
    return [entry for entry in entries if entry]


def parse_xrootd_url(url: str) -> tuple[str, int, str]:
    """The server (host), port and absolute path of a ``root://`` URL, whose path follows the
    host after ``//`` (``root://eos.example.org//eos/juno/raw``) or ``/``.

    Raises:
        InvalidValueError: not a ``root://`` or ``xroot://`` URL with a host, a port that is not a
            number, a query or fragment, a NUL or a ``..`` component, as one sentence.
    """
    from dqm.errors import InvalidValueError

    match = _URL.fullmatch(url)
    if match is None:
        raise InvalidValueError(f"{url!r} is not a URL (scheme://host//path).")
    scheme = match["scheme"].lower()
    if scheme not in REMOTE_SCHEMES:
        raise InvalidValueError(
            f"{url!r}: scheme {scheme!r} is not supported; give a local path or a root:// URL."
        )
    host = match["host"].lower()
    if not host:
        raise InvalidValueError(f"{url!r} names no server (root://host//path).")
    port_text = match["port"]
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise InvalidValueError(f"{url!r}: port {port_text!r} is not a number from 1 to 65535.")
    port = int(port_text) if port_text else XROOTD_PORT
    path = match["path"] or "/"
    if any(c in path for c in "?#\x00"):
        raise InvalidValueError(
            f"{url!r}: a raw file's URL holds no query, fragment or NUL character."
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidValueError(f"{url!r} contains '..'; raw files are named by paths without it.")
    return host, port, "/" + "/".join(parts)


def xrootd_url(host: str, port: int, path: str) -> str:
    """The canonical form of a ``root://`` URL: ``root://host:port//path``."""
    return f"root://{host}:{port}/{path if path.startswith('/') else '/' + path}"


def resolve_raw_uri(
    uri: str, raw_roots: tuple[RawLocation, ...] | list[RawLocation]
) -> RawLocation:
    """Where an announced raw file is read from, which must lie under one of the allowed raw
    roots: its resolved local path, or its canonical ``root://`` URL (:func:`xrootd_url`).

    Accepts an absolute path, a path relative to a local raw root, a ``file://`` URL, or a
    ``root://`` URL under a URL root (same server and port, the path under the root's).

    Raises:
        InvalidValueError: another URL scheme, a ``..`` component, or a location outside every raw
            root (no path traversal), as one sentence.
    """
    from dqm.errors import InvalidValueError

    text = uri.removeprefix("file://")
    if "://" in text:
        host, port, path = parse_xrootd_url(text)
        for root in raw_roots:
            if not is_remote(root):
                continue
            root_host, root_port, root_path = parse_xrootd_url(str(root))
            if (host, port) == (root_host, root_port) and (
                root_path == "/" or path == root_path or path.startswith(root_path + "/")
            ):
                return xrootd_url(host, port, path)
        raise InvalidValueError(
            f"uri {uri!r} is outside the allowed raw roots ({_roots(raw_roots)})."
        )
    if "\x00" in text:
        raise InvalidValueError(f"uri {uri!r} contains a NUL character.")
    local = Path(text)
    if ".." in local.parts:
        raise InvalidValueError(
            f"uri {uri!r} contains '..'; raw files are named by paths without it."
        )
    roots = [Path(root).resolve() for root in raw_roots if not is_remote(root)]
    if not roots:
        raise InvalidValueError(
            f"uri {uri!r} is a local path, and the allowed raw roots are URLs only "
            f"({_roots(raw_roots)})."
        )
    if not local.is_absolute():
        candidates = [root / local for root in roots]
        local = next((c for c in candidates if c.exists()), candidates[0])
    resolved = local.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidValueError(
            f"uri {uri!r} is outside the allowed raw roots ({_roots(raw_roots)})."
        )
    return resolved


def _roots(raw_roots: tuple[RawLocation, ...] | list[RawLocation]) -> str:
    return ", ".join(str(root) for root in raw_roots)


def adler32_file(path: str | Path, chunk_bytes: int = 4 << 20) -> str:
    """The adler32 checksum of a file as 8 lower-case hex digits (as data transfer reports it)."""
    value = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"
