"""Analyses for the job-server tests: one that works, and one for each way an analysis can be
wrong (module level, so that worker processes can import them)."""

from __future__ import annotations

import io
import time

import numpy as np

from dqm.analyses import Result, RunView, Value


def _png() -> bytes:
    """A tiny valid PNG (1x1 pixel), without any plotting library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80")
    buffer = io.BytesIO()
    buffer.write(b"\x89PNG\r\n\x1a\n")
    for kind, data in ((b"IHDR", header), (b"IDAT", pixels), (b"IEND", b"")):
        buffer.write(chunk(kind, data))
    return buffer.getvalue()


def mean_hits(run: RunView, *, scale: float = 1.0) -> Result:
    """The mean number of hits per event, from the merged Calib histogram."""
    nhits = run.histogram("calib", "nhits")
    counts = nhits.values()
    centers = nhits.axes[0].centers
    n = counts.sum()
    mean = float((counts * centers).sum() / n) if n else 0.0
    spread = float(np.sqrt((counts * (centers - mean) ** 2).sum() / n)) if n else 0.0
    return Result(
        variables={
            "mean_nhits": Value(mean * scale, spread / max(n, 1) ** 0.5),
            "events": float(run.provenance.events_used),
        },
        data={"run_type": run.run.run_type, "counts": counts[:5]},
        figures={"pixel": _png()},
    )


def raises(run: RunView) -> Result:
    raise ZeroDivisionError("the analysis divided by zero")


def wrong_type(run: RunView) -> dict[str, float]:
    return {"value": 1.0}


def not_a_number(run: RunView) -> Result:
    return Result(variables={"value": Value(float("nan"), 0.1)})


def too_slow(run: RunView) -> Result:
    time.sleep(30)
    return Result(variables={"value": 1.0})
