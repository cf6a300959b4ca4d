"""The DAQ simulator: realistic JUNO-like events written as raw ROOT files, with faults on purpose.

The detector's and data transfer's stand-in, beside the job server and the dashboard: it imports
``dqm`` (the raw format, the messages, the configuration); ``dqm``, ``pipeline`` and ``app`` never
import it.

Modules:
    model: the simulated detector (true per-PMT constants), energy spectra, vertices, sources.
    kernel: the compiled inner loop (photo-electrons, charges, times, dark noise).
    faults: the faults that can be injected and their parsing.
    events: one chunk of events, as a worker generates it.
    run: a whole run, in parallel chunks, written as files with truth sidecars and a manifest.
    cli: the ``dqm simulate`` command (added to ``dqm`` through the ``dqm.commands`` entry points).

Use::

    from dqm.config import load_settings
    from daqsim import SimulationConfig, parse_fault, simulate_run

    config = SimulationConfig(run_id=10004, n_files=3, faults=(parse_fault("dead:n=30"),))
    result = simulate_run(config, load_settings())
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public names and the modules that define them, imported on first use so that worker
#: processes, which import daqsim.events, do not load the writer's libraries.
_EXPORTS = {
    "FAULT_KINDS": "daqsim.faults",
    "Fault": "daqsim.faults",
    "make_fault": "daqsim.faults",
    "parse_fault": "daqsim.faults",
    "SOURCES": "daqsim.model",
    "SimulatedFile": "daqsim.run",
    "SimulationConfig": "daqsim.run",
    "SimulationResult": "daqsim.run",
    "simulate_run": "daqsim.run",
}

__all__ = [
    "FAULT_KINDS",
    "SOURCES",
    "Fault",
    "SimulatedFile",
    "SimulationConfig",
    "SimulationResult",
    "make_fault",
    "parse_fault",
    "simulate_run",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'daqsim' has no attribute {name!r}")
