"""What the simulator tests read back: the events of a raw file and the truth beside it.

A module of its own rather than the conftest: with several test directories on one command line,
``import conftest`` would find another directory's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

from dqm.config import Settings


def read_events(path: Path) -> dict[str, np.ndarray]:
    """The ``events`` tree of raw file ``path``, one NumPy array per branch."""
    with uproot.open(path) as f:
        arrays = f["events"].arrays(library="np")
    return arrays


def truth(settings: Settings, run_id: int, seq: int) -> dict[str, np.ndarray]:
    """The truth sidecar of file ``seq`` of run ``run_id`` (vertices, energies, ...)."""
    with np.load(settings.data_dir / "truth" / str(run_id) / f"{run_id}.{seq}.truth.npz") as z:
        return {key: z[key] for key in z.files}
