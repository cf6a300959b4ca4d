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
    name = Path(str(path)).name
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
    _check_baskets(tree, Path(str(path)), name)
    return tree


def _check_baskets(tree: Any, path: Path, name: str) -> None:
    """A file cut short (a truncated transfer) still opens; its baskets then point past its end."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # not a local file: the reader will find out
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


def resolve_raw_uri(uri: str, raw_roots: tuple[Path, ...] | list[Path]) -> Path:
    """The local path of an announced raw file, which must lie under one of the allowed raw roots.

    Accepts an absolute path, a path relative to a raw root, or a ``file://`` URL.

    Raises:
        InvalidValueError: another URL scheme, a ``..`` component, or a path outside every raw root
            (no path traversal), as one sentence.
    """
    from dqm.errors import InvalidValueError

    text = uri.removeprefix("file://")
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidValueError(
            f"uri {uri!r}: scheme {scheme!r} is not supported; give a local path under a raw root."
        )
    if "\x00" in text:
        raise InvalidValueError(f"uri {uri!r} contains a NUL character.")
    path = Path(text)
    if ".." in path.parts:
        raise InvalidValueError(
            f"uri {uri!r} contains '..'; raw files are named by paths without it."
        )
    roots = [Path(root).resolve() for root in raw_roots]
    if not path.is_absolute():
        candidates = [root / path for root in roots]
        path = next((c for c in candidates if c.exists()), candidates[0])
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise InvalidValueError(f"uri {uri!r} is outside the allowed raw roots ({allowed}).")
    return resolved


def adler32_file(path: str | Path, chunk_bytes: int = 4 << 20) -> str:
    """The adler32 checksum of a file as 8 lower-case hex digits (as data transfer reports it)."""
    value = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"
