"""The first processing stage: read a raw file, count its events, histogram the hits per event.

Pure functions of their arguments, run in worker processes: they read files but never the database,
so they can run on any machine that sees the raw files (local pool or a Dask cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist
import uproot

from dqm import rawformat
from dqm.errors import DQMError


class FileNotReady(DQMError):
    """The file is not (yet) there as announced: missing, or size or checksum differ. Wait and retry."""


@dataclass
class FileResult:
    """What processing one file gives: its event count and histograms."""

    n_events: int
    histograms: dict[str, hist.Hist] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


#: Stage name under which these histograms are stored.
STAGE = "base"
#: Events read per step (memory stays bounded whatever the file size).
STEP_EVENTS = 20_000


def nhits_histogram() -> hist.Hist:
    """Hits per event, 0 to 25,000 (a 2 MeV event has ~4,000; flow bins keep the rest)."""
    return hist.Hist(hist.axis.Regular(250, 0, 25_000, name="nhits", label="hits per event"))


def verify_file(path: Path, size: int | None, checksum: str | None) -> None:
    """Check that the file is there with the announced size and adler32.

    Raises:
        FileNotReady: it is not (yet).
    """
    if not path.is_file():
        raise FileNotReady(f"{path} does not exist (yet).")
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise FileNotReady(f"{path} has {actual} bytes, {size} were announced.")
    if checksum is not None:
        found = rawformat.adler32_file(path)
        if found != checksum:
            raise FileNotReady(f"{path} has adler32 {found}, {checksum} was announced.")


def process_file(params: Mapping[str, Any]) -> FileResult:
    """Count the events of a raw file and fill the hits-per-event histogram.

    Args:
        params: ``path``, and the announced ``size`` and ``checksum``.

    Raises:
        FileNotReady: the file is not there as announced.
        RawFormatError: it is not a DQM raw file (foreign, corrupt, truncated).
    """
    path = Path(params["path"])
    verify_file(path, params.get("size"), params.get("checksum"))
    nhits = nhits_histogram()
    n_events = 0
    try:
        with uproot.open(path) as file:
            tree = rawformat.check_events_tree(file, path)
            for chunk in tree.iterate([rawformat.HIT_COUNTER], step_size=STEP_EVENTS, library="np"):
                counts = chunk[rawformat.HIT_COUNTER]
                nhits.fill(counts)
                n_events += len(counts)
    except rawformat.RawFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - uproot and the decompressors raise many kinds
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise rawformat.RawFormatError(
            f"{path.name} cannot be read as ROOT: {detail[:300]}"
        ) from None
    return FileResult(
        n_events=n_events, histograms={"nhits": nhits}, titles={"nhits": "Hits per event"}
    )


def merge_histograms(parts: Sequence[Mapping[str, hist.Hist]]) -> dict[str, hist.Hist]:
    """The sum of the histograms of several files, by name (files lacking one contribute nothing)."""
    merged: dict[str, hist.Hist] = {}
    for part in parts:
        for name, histogram in part.items():
            merged[name] = histogram.copy() if name not in merged else merged[name] + histogram
    return merged
