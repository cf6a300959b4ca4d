"""Offline-monitoring analyses: functions that run on every new run and store a few named numbers
with their lineage, tracked as trends over runs.

An analysis is declared in TOML (the shipped ``analyses.toml``, an operator's file named by
``analyses_file`` in ``dqm.toml`` or ``DQM_ANALYSES_FILE``, or a package's entry point in the group
``dqm.analyses``), and is a pure function of a read-only view of one run.

Modules:
    api: what an analysis receives (:class:`RunView`) and returns (:class:`Result`, :class:`Value`).
    declarations: the TOML declarations read, checked and gathered into a catalog.
    execute: an analysis run in a worker: time limit, result checked, figures made PNG.
    runview: the view of a run read from the database, and the requirements it lacks.
    records: declarations recorded (versions checked), results stored, backfills queued.
    builtin: the analyses of this detector (energy scale, light yield, PMT health, dark rates,
        laser gains and timing, trigger rate, reconstruction, sector occupancy, processing).
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
