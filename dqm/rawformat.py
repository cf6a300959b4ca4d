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

import numpy as np

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


def raw_file_name(run_id: int, seq: int) -> str:
    """File name of sequence ``seq`` of run ``run_id``: ``<run>.<seq>.root``."""
    return f"{run_id}.{seq}.root"


def raw_file_path(raw_dir: Path, run_id: int, seq: int) -> Path:
    """Where a raw file lives under a raw root: ``<raw_dir>/<run>/<run>.<seq>.root``."""
    return raw_dir / str(run_id) / raw_file_name(run_id, seq)


def adler32_file(path: str | Path, chunk_bytes: int = 4 << 20) -> str:
    """The adler32 checksum of a file as 8 lower-case hex digits (as data transfer reports it)."""
    value = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"
