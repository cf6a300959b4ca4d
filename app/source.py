"""Data access of the dashboard: the one place that talks to the database, through the query
functions of :mod:`dqm.db.queries`, and returns plain data (DataFrames, dicts, ``hist`` objects,
frozen dataclasses).

State classes (:mod:`app.state`) hold a :class:`Source`; views never see it.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dqm import detector
from dqm.db import queries
from dqm.db.models import Run
from dqm.db.session import engine_for, transaction
from dqm.histcodec import AnyHist
from dqm.pmtclass import classify
from dqm.pmtstats import derived_pmt_quantities
from dqm.states import FileState, RunStatus
from dqm.times import format_time

#: Columns of the recent-runs table.
RUN_COLUMNS = ["run_id", "run_type", "status", "start_time", "end_time", "n_events", "n_files"]
#: Columns of :attr:`RunSummary.files`.
FILE_COLUMNS = ["seq", "file", "state", "job", "error", "events"]


@dataclass(frozen=True)
class StoredHistogram:
    """A run's histogram as the views need it."""

    stage: str
    name: str
    title: str
    histogram: AnyHist
    provenance: dict[str, Any]


@dataclass(frozen=True, eq=False)
class RunSummary:
    """What the run page shows of a run besides its histograms.

    Attributes:
        run_id: the run number.
        run_type: physics, laser, …
        detector: the detector that took the run.
        status: the run's status as displayed (``"All Completed"``, …).
        start_time: when data taking started (UTC).
        end_time: when it ended (UTC); None while the run takes data.
        n_events: events taken; None until known.
        n_files: files taken; None until known.
        files_done: files processed so far.
        rec_method: reconstruction method; None until chosen.
        sampling_fraction: fraction of the events processed.
        calibration_version: version of the calibration used; None: nominal (none stored).
        comment: the shifters' comment; None when there is none.
        provenance: what the merged histograms were made from (rec method, calibration, files…).
        files: one row per file, columns :data:`FILE_COLUMNS`: ``seq``, ``file`` (URI),
            ``state``, ``job`` (state of its latest job, or empty), ``error`` (that job's error,
            or empty) and ``events``. Treated as read-only.
    """

    run_id: int
    run_type: str
    detector: str
    status: str
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    n_events: int | None
    n_files: int | None
    files_done: int
    rec_method: str | None
    sampling_fraction: float
    calibration_version: int | None
    comment: str | None
    provenance: dict[str, Any]
    files: pd.DataFrame

    def __eq__(self, other: object) -> bool:
        # Field by field, the files by content: a refresh that finds the run as it was must not
        # send the page its summary again.
        if not isinstance(other, RunSummary):
            return NotImplemented
        return all(
            mine.equals(theirs) if isinstance(mine, pd.DataFrame) else mine == theirs
            for mine, theirs in (
                (getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
            )
        )


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
                run = queries.find_run(session, run_id=run_id)
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

    def run_summary(self, run_id: int) -> RunSummary | None:
        """The run's attributes, its files with their job state and error, its calibration version;
        None if there is no such run."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id=run_id)
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
                for f in queries.files_of_run(session, run_id=run_id)
            ]
            calibration = queries.calibration_for_run(session, run_id=run_id)
            merged = queries.histogram_rows(session, run_id=run_id)
            return RunSummary(
                run_id=run.run_id,
                run_type=run.run_type,
                detector=run.detector,
                status=str(run.status),
                start_time=run.start_time,
                end_time=run.end_time,
                n_events=run.n_events,
                n_files=run.n_files,
                files_done=sum(f["state"] == str(FileState.DONE) for f in files),
                rec_method=run.rec_method,
                sampling_fraction=run.sampling_fraction,
                calibration_version=calibration.version if calibration else None,
                comment=run.comment,
                provenance=merged[0].provenance if merged else {},
                files=pd.DataFrame(files, columns=FILE_COLUMNS),
            )

    def run_events(self, run_id: int, max_events: int = 5_000_000) -> pd.DataFrame:
        """The run's reconstructed physics events (its processed files', in order, at most
        ``max_events``): vertex in m, ρ² in m², R³ as a fraction of the scintillator's, visible
        energy in MeV, trigger time in s since the run started."""
        with transaction(self.database_url) as session:
            columns = queries.run_events(session, run_id=run_id, max_events=max_events)
        x, y, z = (columns[name] / 1e3 for name in ("x_mm", "y_mm", "z_mm"))
        radius_m = np.sqrt(x**2 + y**2 + z**2)
        return pd.DataFrame(
            {
                "x_m": x,
                "y_m": y,
                "z_m": z,
                "rho2_m2": x**2 + y**2,
                "r3": (radius_m / (detector.LS_RADIUS_MM / 1e3)) ** 3,
                "energy_mev": columns["energy_mev"],
                "time_s": columns["time_s"],
            }
        )

    def root_file(self, run_id: int) -> io.BytesIO:
        """The run exported as a ROOT file (as by ``dqm export``), in memory."""
        from dqm.rootexport import export_run

        with tempfile.TemporaryDirectory(prefix="dqm-export-") as tmp:
            path = Path(tmp) / f"run{run_id}.root"
            with transaction(self.database_url) as session:
                export_run(session, run_id, path)
            return io.BytesIO(path.read_bytes())

    def run_token(self, run_id: int) -> tuple[object, ...] | None:
        """Changes whenever anything shown about the run does (see queries.run_change_token)."""
        with transaction(self.database_url) as session:
            return queries.run_change_token(session, run_id=run_id)

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
            run = queries.find_run(session, run_id=run_id)
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

    def run_trends(self, run_type: str = "physics", limit: int = 200) -> pd.DataFrame:
        """Figures of the latest ``limit`` All Completed runs of a type, oldest first, to follow
        over runs: mean and RMS of the visible energy, mean hit rate and charge of the PMTs, and
        the dead and hot PMTs under the default cuts (NaN where a run lacks the histogram or the
        PMT statistics)."""
        with transaction(self.database_url) as session:
            runs = queries.recent_runs(
                session, limit=limit, status=RunStatus.ALL_COMPLETED, run_type=run_type
            )
            rows = []
            for run in sorted(runs, key=lambda r: r.run_id):
                energy = queries.histogram_rows(session, run_id=run.run_id, names=["energy"])
                stats = queries.pmt_stats_row(session, run_id=run.run_id)
                quantities = (
                    derived_pmt_quantities(
                        queries.pmt_arrays(stats),
                        n_events=stats.n_events,
                        livetime_ns=stats.livetime_ns,
                    )
                    if stats is not None
                    else None
                )
                histogram = queries.load_histogram(energy[0]) if energy else None
                rows.append(_trend_row(run, histogram, quantities))
        return pd.DataFrame(rows, columns=TREND_COLUMNS)

    # --- writes (each records who and when; anonymous visitors only read) ----------------------

    def cut_defaults(self, run_type: str) -> dict[str, Any] | None:
        """The PMT cuts saved for a run type: dead_cut, hot_cut, normal_band, saved_by, saved_at."""
        with transaction(self.database_url) as session:
            row = queries.cut_defaults(session, run_type=run_type)
            if row is None:
                return None
            return {
                "dead_cut": row.dead_cut,
                "hot_cut": row.hot_cut,
                "normal_band": (row.normal_low, row.normal_high),
                "saved_by": row.saved_by,
                "saved_at": row.saved_at,
            }

    def save_cut_defaults(
        self,
        run_type: str,
        dead_cut: float,
        hot_cut: float,
        normal_band: tuple[float, float],
        user: str,
    ) -> None:
        with transaction(self.database_url) as session:
            queries.save_cut_defaults(
                session,
                run_type=run_type,
                dead_cut=dead_cut,
                hot_cut=hot_cut,
                normal_band=normal_band,
                user=user,
            )

    def set_run_comment(self, run_id: int, comment: str, user: str) -> None:
        with transaction(self.database_url) as session:
            queries.set_run_comment(session, run_id=run_id, comment=comment, user=user)

    def retry_job(self, job_id: int, user: str) -> None:
        with transaction(self.database_url) as session:
            queries.retry_job_as(session, job_id=job_id, user=user)

    def recent_changes(self, limit: int = 20) -> pd.DataFrame:
        """The latest changes made through the dashboard: when, who, what, to what."""
        with transaction(self.database_url) as session:
            rows = [
                {
                    "at": c.at,
                    "user": c.user,
                    "action": c.action,
                    "target": c.target,
                    "detail": ", ".join(f"{k}: {v}" for k, v in (c.detail or {}).items()),
                }
                for c in queries.changes(session, limit=limit)
            ]
        return pd.DataFrame(rows, columns=["at", "user", "action", "target", "detail"])

    def job_counts(self) -> dict[str, int]:
        with transaction(self.database_url) as session:
            return {str(k): v for k, v in queries.count_jobs_by_state(session).items()}

    def job_durations(self, last: int = 1000) -> pd.DataFrame:
        """Run time (started to finished) of the latest ``last`` DONE jobs of each kind: count,
        median, 95th percentile and longest, in seconds."""
        with transaction(self.database_url) as session:
            rows = []
            for kind in queries.job_kinds(session):
                jobs = queries.list_jobs(session, state="DONE", kind=kind, limit=last)
                seconds = np.array(
                    [
                        (j.finished_at - j.started_at).total_seconds()
                        for j in jobs
                        if j.started_at is not None and j.finished_at is not None
                    ]
                )
                if seconds.size:
                    rows.append(
                        {
                            "kind": kind,
                            "done": int(seconds.size),
                            "median_s": float(np.median(seconds)),
                            "p95_s": float(np.percentile(seconds, 95)),
                            "max_s": float(seconds.max()),
                        }
                    )
        return pd.DataFrame(rows, columns=["kind", "done", "median_s", "p95_s", "max_s"])

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
                    "interruptions": j.interruptions,
                    "finished": j.finished_at,
                    "error": j.error or "",
                }
                for j in jobs
            ]
        return pd.DataFrame(
            rows,
            columns=[
                "job",
                "kind",
                "run",
                "file",
                "state",
                "attempts",
                "interruptions",
                "finished",
                "error",
            ],
        )


#: Columns of :meth:`Source.run_trends`.
TREND_COLUMNS = [
    "run_id",
    "start_time",
    "n_events",
    "energy_mean_mev",
    "energy_rms_mev",
    "mean_hit_rate",
    "mean_charge_pe",
    "n_dead",
    "n_hot",
]


def _trend_row(
    run: Run, energy: AnyHist | None, quantities: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "start_time": run.start_time,
        "n_events": run.n_events,
    }
    if energy is not None and energy.sum() > 0:
        centres, counts = energy.axes[0].centers, energy.values()
        mean = float(np.average(centres, weights=counts))
        row["energy_mean_mev"] = mean
        row["energy_rms_mev"] = float(np.sqrt(np.average((centres - mean) ** 2, weights=counts)))
    if quantities is not None:
        rate = quantities["hit_rate"]
        row["mean_hit_rate"] = float(np.nanmean(rate))
        row["mean_charge_pe"] = float(np.nanmean(quantities["mean_charge_pe"]))
        classes = classify(rate)  # under the built-in cuts, the same for every run
        row["n_dead"], row["n_hot"] = classes.n_dead, classes.n_hot
    return row


def utc(value: dt.datetime | None) -> str:
    """A time for display: ``YYYY-MM-DD HH:MM:SS`` (UTC), or an empty string."""
    return format_time(value) or ""
