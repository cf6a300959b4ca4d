"""Data access of the dashboard: the one place that talks to the database, through the query
functions of :mod:`dqm.db.queries`, and returns plain data (DataFrames, dicts, ``hist`` objects).

State classes (:mod:`app.state`) hold a :class:`Source`; views never see it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import hist
import numpy as np
import pandas as pd

from dqm.db import queries
from dqm.db.models import FileState, RunStatus
from dqm.db.session import engine_for, transaction
from dqm.pmtstats import derived_pmt_quantities

#: Columns of the recent-runs table.
RUN_COLUMNS = ["run_id", "run_type", "status", "start_time", "end_time", "n_events", "n_files"]


@dataclass(frozen=True)
class StoredHistogram:
    """A run's histogram as the views need it."""

    stage: str
    name: str
    title: str
    histogram: hist.Hist
    provenance: dict[str, Any]


class Source:
    """Reads the DQM database for the dashboard.

    Args:
        database_url: SQLAlchemy URL of the DQM database.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        engine_for(database_url)  # one engine per URL for the whole process

    def recent_runs(
        self,
        *,
        mode: str = "Recent Runs",
        limit: int = 50,
        days: float = 7.0,
        statuses: list[str] | None = None,
        run_types: list[str] | None = None,
        run_id: int | None = None,
    ) -> pd.DataFrame:
        """The runs of a search mode (``Recent Runs``: the last ``limit``; ``Recent Completed``:
        the last ``limit`` finished; ``Recent Days``: the last ``days`` days), filtered."""
        with transaction(self.database_url) as session:
            if run_id is not None:
                run = queries.find_run(session, run_id)
                runs = [run] if run is not None else []
            else:
                runs = queries.recent_runs(
                    session,
                    limit=None if mode == "Recent Days" else limit,
                    days=days if mode == "Recent Days" else None,
                    completed=mode == "Recent Completed",
                    status=statuses or None,
                    run_type=run_types or None,
                )
            rows = [
                {
                    "run_id": r.run_id,
                    "run_type": r.run_type,
                    "status": str(r.status),
                    "start_time": r.start_time,
                    "end_time": r.end_time,
                    "n_events": r.n_events,
                    "n_files": r.n_files,
                }
                for r in runs
            ]
        return pd.DataFrame(rows, columns=RUN_COLUMNS)

    def run_types(self) -> list[str]:
        with transaction(self.database_url) as session:
            return queries.run_types(session)

    def run_summary(self, run_id: int) -> dict[str, Any] | None:
        """The run's attributes, its files with their job state and error, its calibration version;
        None if there is no such run."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id)
            if run is None:
                return None
            jobs = queries.list_jobs(session, run_id=run_id, limit=None)
            last_job = {j.file_id: j for j in sorted(jobs, key=lambda j: j.id) if j.file_id}
            files = [
                {
                    "seq": f.seq,
                    "file": f.uri,
                    "state": str(f.state),
                    "job": str(last_job[f.id].state) if f.id in last_job else "",
                    "error": (last_job[f.id].error or "") if f.id in last_job else "",
                    "events": f.n_events,
                }
                for f in queries.files_of_run(session, run_id)
            ]
            calibration = queries.calibration_for_run(session, run_id)
            merged = queries.histogram_rows(session, run_id=run_id)
            return {
                "run_id": run.run_id,
                "run_type": run.run_type,
                "detector": run.detector,
                "status": str(run.status),
                "start_time": run.start_time,
                "end_time": run.end_time,
                "n_events": run.n_events,
                "n_files": run.n_files,
                "files_done": sum(f["state"] == str(FileState.DONE) for f in files),
                "rec_method": run.rec_method,
                "sampling_fraction": run.sampling_fraction,
                "calibration_version": calibration.version if calibration else None,
                "comment": run.comment,
                "provenance": merged[0].provenance if merged else {},
                "files": pd.DataFrame(
                    files, columns=["seq", "file", "state", "job", "error", "events"]
                ),
            }

    def histograms(self, run_id: int, stage: str) -> list[StoredHistogram]:
        """The run's merged histograms of a stage (what exists so far), by name."""
        with transaction(self.database_url) as session:
            return [
                StoredHistogram(
                    row.stage,
                    row.name,
                    row.title or row.name,
                    queries.load_histogram(row),
                    dict(row.provenance or {}),
                )
                for row in queries.histogram_rows(session, run_id=run_id, stage=stage)
            ]

    def reference_run(self, run_id: int) -> int | None:
        """The default reference of a run: the latest All Completed run of the same type."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id)
            if run is None:
                return None
            candidates = queries.recent_runs(
                session, limit=2, status=RunStatus.ALL_COMPLETED, run_type=run.run_type
            )
            others = [r.run_id for r in candidates if r.run_id != run_id]
            return others[0] if others else None

    def pmt_quantities(self, run_id: int) -> dict[str, np.ndarray] | None:
        """Hit rate, mean charge, mean time and dark rate of every PMT of a run (None: no PMT
        statistics stored yet)."""
        with transaction(self.database_url) as session:
            row = queries.pmt_stats_row(session, run_id=run_id)
            if row is None:
                return None
            return derived_pmt_quantities(
                queries.pmt_arrays(row), n_events=row.n_events, livetime_ns=row.livetime_ns
            )

    def job_counts(self) -> dict[str, int]:
        with transaction(self.database_url) as session:
            return {str(k): v for k, v in queries.count_jobs_by_state(session).items()}

    def recent_failures(self, limit: int = 20) -> pd.DataFrame:
        """The latest failed or to-check jobs with their reasons."""
        with transaction(self.database_url) as session:
            jobs = sorted(
                queries.list_jobs(session, state="FAILED", limit=limit)
                + queries.list_jobs(session, state="TOCHECK", limit=limit),
                key=lambda j: j.id,
                reverse=True,
            )[:limit]
            rows = [
                {
                    "job": j.id,
                    "kind": j.kind,
                    "run": j.run_id,
                    "file": j.file_id,
                    "state": str(j.state),
                    "attempts": j.attempts,
                    "finished": j.finished_at,
                    "error": j.error or "",
                }
                for j in jobs
            ]
        return pd.DataFrame(
            rows, columns=["job", "kind", "run", "file", "state", "attempts", "finished", "error"]
        )


def utc(value: dt.datetime | None) -> str:
    """A time for display: ``YYYY-MM-DD HH:MM:SS`` (UTC), or an empty string."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""
