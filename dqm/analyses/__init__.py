"""Offline-monitoring analyses: functions that run on every new run and store a few named numbers
with their lineage, tracked as trends over runs.

An analysis is declared in TOML (the shipped ``analyses.toml``, an operator's file named by
``analyses_file`` in ``dqm.toml`` or ``DQM_ANALYSES_FILE``, or a package's entry point in the group
``dqm.analyses``), and is a pure function of a read-only view of one run.

Modules:
    api: what an analysis receives (:class:`RunView`) and returns (:class:`Result`, :class:`Value`).
"""

from __future__ import annotations

from dqm.analyses.api import (
    CalibrationInfo,
    EventColumns,
    FileInfo,
    MissingInput,
    PmtStatistics,
    ProcessingInfo,
    Provenance,
    Result,
    RunInfo,
    RunView,
    Value,
)

__all__ = [
    "CalibrationInfo",
    "EventColumns",
    "FileInfo",
    "MissingInput",
    "PmtStatistics",
    "ProcessingInfo",
    "Provenance",
    "Result",
    "RunInfo",
    "RunView",
    "Value",
]
