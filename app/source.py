"""Data access of the dashboard: the one place that talks to the database, through the query
functions of :mod:`dqm.db.queries`, and returns plain data (DataFrames, dicts, ``hist`` objects,
frozen dataclasses).

State classes (:mod:`app.state`) hold a :class:`Source`; views never see it.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dqm import detector, keptevents, pmtstatus
from dqm.calibdiff import moved_pmts
from dqm.certification import certification_of, parse_stage_decisions
from dqm.certification import describe as describe_certification
from dqm.checks.backtest import BacktestRow, backtest, backtest_cuts, backtest_runs, cut_checks
from dqm.checks.declarations import CheckCatalog, CheckDeclaration, load_checks
from dqm.checks.quality import SEVERITY, Quality
from dqm.checks.records import save_check_version, with_saved_versions
from dqm.checks.references import choose_reference
from dqm.db import queries
from dqm.db.models import Run
from dqm.db.session import engine_for, transaction
from dqm.errors import InvalidValueError, first_line
from dqm.histcodec import AnyHist, array_from_bytes
from dqm.metrics import DatabaseProbe
from dqm.pmtclass import HitRateCuts, classify
from dqm.pmtstats import derived_pmt_quantities
from dqm.states import AlarmState, Certification, FileState, JobState, RunStatus
from dqm.times import format_time, utcnow
from dqm.users import Actor

#: Columns of the recent-runs table.
RUN_COLUMNS = [
    "run_id",
    "run_type",
    "status",
    "quality",
    "certification",
    "new_comments",
    "start_time",
    "end_time",
    "n_events",
    "n_files",
]
#: Columns of :attr:`RunChecks.checks`.
CHECK_COLUMNS = [
    "stage",
    "check",
    "version",
    "quality",
    "sentence",
    "looks_at",
    "reference_run",
    "statistics",
    "evaluated",
]
#: Columns of :meth:`Source.alarms`.
ALARM_COLUMNS = [
    "id",
    "state",
    "severity",
    "run",
    "check",
    "sentence",
    "opened",
    "acknowledged_by",
    "resolved_by",
    "notifications",
]
#: Columns of :meth:`Source.calibrations` (then the mean gain and offset per PMT type).
CALIBRATION_COLUMNS = [
    "version",
    "valid_from_run",
    "valid_to_run",
    "source_run",
    "created_at",
    "created_by",
    "comment",
]
#: Columns of :meth:`Source.run_comments`.
COMMENT_COLUMNS = ["id", "parent", "target", "user", "role", "at", "text"]
#: Columns of :meth:`Source.good_runs` (and of the dashboard's download).
GOOD_RUN_COLUMNS = [
    "run",
    "run_type",
    "start_time",
    "end_time",
    "events",
    "certified_at",
    "certified_by",
    "calibration_version",
    "check_versions",
    "code_version",
]
#: The tiles of the shift overview, in their order on the page.
TILES = ("current_run", "processing", "alarms", "last_runs", "sign_off", "health")
#: A job server that changed no job for this long, with files waiting, looks stopped.
QUIET_SERVER_S = 300.0
#: Columns of :attr:`Backtest.rows`.
BACKTEST_COLUMNS = [
    "run",
    "run_type",
    "check",
    "current",
    "proposed",
    "changes",
    "current_sentence",
    "proposed_sentence",
]
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
        tags: the run's tags, sorted (``messy``, ``bad``, ``ramp_up``, ...).
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
    tags: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class CheckParameter:
    """A parameter of a check as its editor shows it: the value as text (``--set`` syntax)."""

    name: str
    value: str
    type: str
    meaning: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckInfo:
    """A check as it holds now (the declared version, or a later one saved by hand)."""

    name: str
    version: int
    kind: str
    stage: str
    description: str
    run_types: tuple[str, ...]
    looks_at: str
    origin: str
    parameters: tuple[CheckParameter, ...]
    uses_pmt_cuts: bool


def _check_info(check: CheckDeclaration) -> CheckInfo:
    spec = check.spec
    return CheckInfo(
        name=check.name,
        version=check.version,
        kind=check.kind,
        stage=check.stage,
        description=check.description,
        run_types=tuple(sorted(check.run_types)) if check.run_types is not None else (),
        looks_at=check.target,
        origin=check.origin,
        parameters=tuple(
            CheckParameter(
                name,
                parameter.to_text(check.parameters[name]),
                parameter.type,
                parameter.meaning,
                parameter.choices,
            )
            for name, parameter in spec.parameters.items()
        ),
        uses_pmt_cuts=spec.uses_pmt_cuts,
    )


@dataclass(frozen=True, eq=False)
class Backtest:
    """Past runs judged as things are and as proposed (nothing saved).

    Attributes:
        title: what was tried, in one line.
        rows: one row per run (and check, for PMT cuts), columns :data:`BACKTEST_COLUMNS`,
            newest run first.
    """

    title: str
    rows: pd.DataFrame

    @property
    def changed_runs(self) -> list[int]:
        """The runs whose judgement would change, newest first."""
        changed = self.rows[self.rows["changes"].astype(bool)]
        return list(dict.fromkeys(int(r) for r in changed["run"]))

    @property
    def summary(self) -> str:
        """One sentence: how many runs would change, and which."""
        n_runs = int(self.rows["run"].nunique())
        changed = self.changed_runs
        if not n_runs:
            return "No finished run to try it on."
        if not changed:
            return f"None of the {n_runs} runs would change."
        listed = ", ".join(str(r) for r in changed[:20]) + ("…" if len(changed) > 20 else "")
        return f"{len(changed)} of {n_runs} runs would change: {listed}."


#: Told the runs judged so far and how many there are (0 of n at the start).
Progress = Callable[[int, int], None]


def _counter(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    """``progress`` as a counter of runs judged (what dqm.checks.backtest calls)."""
    if progress is None:
        return None
    done = 0
    progress(0, total)

    def count(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    return count


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _api_run(run: Run) -> dict[str, Any]:
    state = certification_of(run.status, run.certification)
    return {
        "run": run.run_id,
        "run_type": run.run_type,
        "status": str(run.status),
        "start_time": format_time(run.start_time),
        "end_time": format_time(run.end_time) if run.end_time else None,
        "events": run.n_events,
        "files": run.n_files,
        "quality": str(run.quality) if run.quality is not None else None,
        "sign_off": str(state) if state is not None else None,
        "verdict": str(run.verdict) if run.verdict is not None else None,
    }


def _backtest_frame(rows: list[BacktestRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": row.run_id,
                "run_type": row.run_type,
                "check": row.check,
                "current": str(row.current),
                "proposed": str(row.proposed),
                "changes": row.changed,
                "current_sentence": row.current_sentence,
                "proposed_sentence": row.proposed_sentence,
            }
            for row in rows
        ],
        columns=BACKTEST_COLUMNS,
    )


#: Columns of :attr:`RunCertification.decisions`.
DECISION_COLUMNS = ["at", "action", "state", "verdict", "stages", "user", "role", "comment"]


@dataclass(frozen=True, eq=False)
class RunCertification:
    """A run's sign-off, as its Certification tab shows it.

    Attributes:
        state: OPEN, SIGNED_OFF, CERTIFIED, or None (not All Completed yet).
        verdict: the latest decision's verdict (Good, Bad) or None.
        description: ``Certified · Good``, ``Open``, ``""``.
        automatic: the automatic quality of each stage (from the checks).
        form: the sign-off form as it starts, stage → Good or Bad (from the automatic quality).
        decisions: every decision, oldest first, columns :data:`DECISION_COLUMNS`.
    """

    state: str | None
    verdict: str | None
    description: str
    automatic: dict[str, str]
    form: dict[str, str]
    decisions: pd.DataFrame

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunCertification):
            return NotImplemented
        return (self.state, self.verdict, self.automatic, self.form) == (
            other.state,
            other.verdict,
            other.automatic,
            other.form,
        ) and self.decisions.equals(other.decisions)


@dataclass(frozen=True, eq=False)
class RunChecks:
    """A run's quality and its checks' results, as the run page shows them.

    Attributes:
        quality: the run's quality (None: not judged yet).
        stages: each stage's quality (calib, rec, pmt, analyses, processing).
        checks: one row per check, columns :data:`CHECK_COLUMNS`; ``looks_at`` is
            ``stage/name`` of a histogram, ``analysis/variable``, or empty.
        frames: the quality of the worst check looking at each histogram (``calib/charge_pe``).
        reference_run: the run's reference (None: none).
        reference_reason: why it is the reference, in one sentence.
    """

    quality: str | None
    stages: dict[str, str]
    checks: pd.DataFrame
    frames: dict[str, str]
    reference_run: int | None
    reference_reason: str

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunChecks):
            return NotImplemented
        return (
            self.quality == other.quality
            and self.stages == other.stages
            and self.frames == other.frames
            and self.reference_run == other.reference_run
            and self.reference_reason == other.reference_reason
            and self.checks.equals(other.checks)
        )


@dataclass(frozen=True)
class VariableInfo:
    """A variable of a version of an analysis, as declared.

    Attributes:
        name: the variable's name.
        unit: its unit (empty: a pure number).
        meaning: one sentence saying what it is (empty when the version was never declared).
        expected: the declared band of normal values (low, high), if any.
        optional: whether a result may lack it.
    """

    name: str
    unit: str = ""
    meaning: str = ""
    expected: tuple[float, float] | None = None
    optional: bool = False


@dataclass(frozen=True)
class AnalysisVersion:
    """A version of an analysis that can be followed over runs.

    Attributes:
        analysis: the analysis's name.
        version: the version.
        description: what it measures (empty when never declared).
        variables: its variables, by name.
        n_results: the runs that have a result of it.
        declared: whether its declaration was recorded (else it is known from results only).
    """

    analysis: str
    version: int
    description: str
    variables: tuple[VariableInfo, ...]
    n_results: int
    declared: bool

    @property
    def label(self) -> str:
        return f"{self.analysis} v{self.version}"

    def variable(self, name: str) -> VariableInfo | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclass(frozen=True)
class AnalysisVariableValue:
    """One variable of a run's analysis result, with what its declaration says of it."""

    variable: str
    value: float
    error: float | None
    unit: str
    meaning: str = ""
    expected: tuple[float, float] | None = None

    @property
    def in_band(self) -> bool | None:
        """Whether the value lies in the expected band (None: no band declared)."""
        if self.expected is None:
            return None
        return self.expected[0] <= self.value <= self.expected[1]


#: What a run page says of an analysis from the state of its latest job.
JOB_STATUS = {
    "TODO": "waiting",
    "SUBMITTED": "waiting",
    "RUNNING": "running",
    "DONE": "done",
    "FAILED": "failed",
    "TOCHECK": "to check",
}


@dataclass(frozen=True)
class RunAnalysis:
    """A version of an analysis on one run: its result (if stored) and its latest job (if any).

    Attributes:
        analysis, version: which analysis.
        description: what it measures (from its declaration).
        status: ``done``, ``waiting``, ``running``, ``failed``, ``to check`` (from the latest job)
            or ``stored`` (a result without a job, such as one imported).
        values: the result's variables (empty without a result).
        lineage: what the result was made from (code, analysis and calibration versions, rec
            method, sampling fraction, events and files used...).
        data: the result's free data.
        result_id: the stored result's id (for its figures); None without a result.
        created_at: when the result was stored (UTC).
        figures: the names of the result's figures (PNG).
        job_id: the latest job's id; None without a job.
        job_state: that job's state (``TODO``, ``FAILED``...).
        error: the reason a FAILED or TOCHECK job gave (one sentence).
        traceback: where a FAILED job's analysis raised.
    """

    analysis: str
    version: int
    description: str
    status: str
    values: tuple[AnalysisVariableValue, ...] = ()
    lineage: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    result_id: int | None = None
    created_at: dt.datetime | None = None
    figures: tuple[str, ...] = ()
    job_id: int | None = None
    job_state: str | None = None
    error: str | None = None
    traceback: str | None = None


#: Columns of :meth:`Source.trend`.
TREND_POINT_COLUMNS = ["run_id", "start_time", "variable", "value", "error", "unit"]
#: Columns of :meth:`Source.backfills`.
BACKFILL_COLUMNS = [
    "backfill",
    "analysis",
    "version",
    "runs",
    "created",
    "by",
    "jobs",
    "finished",
    "done",
    "failed",
    "progress",
]


def _expected(band: Any) -> tuple[float, float] | None:
    """A declared ``expected`` band as two floats (None when absent or malformed)."""
    try:
        low, high = band
        return float(low), float(high)
    except (TypeError, ValueError):
        return None


def _variables(declaration: dict[str, Any]) -> tuple[VariableInfo, ...]:
    declared = declaration.get("variables") or {}
    return tuple(
        VariableInfo(
            name=str(name),
            unit=str(info.get("unit") or ""),
            meaning=str(info.get("meaning") or ""),
            expected=_expected(info.get("expected")),
            optional=bool(info.get("optional", False)),
        )
        for name, info in sorted(declared.items())
        if isinstance(info, dict)
    )


#: One PMT in each run (Source.pmt_history): see dqm.db.queries.PmtHistoryRow.
PMT_HISTORY_COLUMNS = (
    "run_id",
    "run_type",
    "start_time",
    "n_events",
    "status",
    "hit_rate",
    "dark_rate_hz",
    "signal_charge_pe",
    "gain_adc_per_pe",
    "calibration_version",
)

#: A version of the PMT mask (Source.pmt_masks).
MASK_COLUMNS = (
    "version",
    "valid_from_run",
    "n_masked",
    "how",
    "created_by",
    "created_at",
    "comment",
)


@dataclass(frozen=True, eq=False)
class PmtChangeSummary:
    """A run's PMT classes and the changes since the previous run of its type.

    Attributes:
        counts: dead, hot and noisy PMTs in the run.
        previous_run: the run compared with (None: the first of its type with a status).
        change_counts: newly dead, newly hot, newly noisy, recovered: how many.
        changes: change, pmt_id, type: one row a PMT that changed.
        updated_at: when the status was stored (the run's latest merge).
    """

    run_id: int
    run_type: str
    counts: dict[str, int]
    previous_run: int | None
    change_counts: dict[str, int]
    changes: pd.DataFrame
    updated_at: dt.datetime


class Source:
    """Reads the DQM database for the dashboard.

    Args:
        database_url: SQLAlchemy URL of the DQM database.
    """

    def __init__(self, database_url: str, checks_file: Path | None = None) -> None:
        self.database_url = database_url
        self.checks_file = checks_file
        self._declared: CheckCatalog | None = None
        self._probe: DatabaseProbe | None = None
        engine_for(database_url)  # one engine per URL for the whole process

    def database_problem(self) -> str | None:
        """None when a new connection to the database answers within a short timeout, else one
        sentence why not (for ``/health``; the answer is kept a second)."""
        if self._probe is None:
            self._probe = DatabaseProbe(self.database_url)
        return self._probe.problem()

    def recent_runs(
        self,
        *,
        mode: str = "Recent Runs",
        limit: int = 50,
        days: float = 7.0,
        statuses: list[str] | None = None,
        run_types: list[str] | None = None,
        run_id: int | None = None,
        qualities: list[str] | None = None,
        certifications: list[str] | None = None,
        new_since: dt.datetime | None = None,
    ) -> pd.DataFrame:
        """The runs of a search mode (``Recent Runs``: the last ``limit``; ``Recent Completed``:
        the last ``limit`` finished; ``Recent Days``: the last ``days`` days), filtered (by
        quality too: ``Not judged`` for runs without one; and by sign-off state); with the
        count of each run's comments made after ``new_since`` (0 without it)."""
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
                    quality=qualities or None,
                    certification=certifications or None,
                )
            new = (
                queries.runs_with_new_comments(
                    session, run_ids=[r.run_id for r in runs], since=new_since
                )
                if new_since is not None
                else {}
            )
            rows = [
                {
                    "run_id": r.run_id,
                    "run_type": r.run_type,
                    "status": str(r.status),
                    "quality": str(r.quality) if r.quality is not None else "",
                    "certification": describe_certification(
                        certification_of(r.status, r.certification), r.verdict
                    ),
                    "new_comments": new.get(r.run_id, 0),
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
                tags=tuple(queries.run_tags(session, run_id=run_id)),
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

    def run_report(self, run_id: int) -> io.BytesIO:
        """The run's report (dqm.report): one self-contained HTML file."""
        from dqm.report import run_report

        with transaction(self.database_url) as session:
            return io.BytesIO(run_report(session, run_id=run_id).encode("utf-8"))

    def root_file(self, run_id: int) -> io.BytesIO:
        """The run exported as a ROOT file (as by ``dqm export``), in memory."""
        from dqm.rootexport import export_run

        with tempfile.TemporaryDirectory(prefix="dqm-export-") as tmp:
            path = Path(tmp) / f"run{run_id}.root"
            with transaction(self.database_url) as session:
                export_run(session, run_id, path)
            return io.BytesIO(path.read_bytes())

    def run_token(self, run_id: int) -> tuple[object, ...] | None:
        """Changes whenever anything shown about the run does (see queries.run_change_token and
        queries.run_analyses_token)."""
        with transaction(self.database_url) as session:
            token = queries.run_change_token(session, run_id=run_id)
            if token is None:
                return None
            return (
                *token,
                queries.run_analyses_token(session, run_id=run_id),
                queries.checks_token(session, run_id=run_id),
            )

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
        """The reference of a run, as its checks choose it (dqm.checks.references)."""
        with transaction(self.database_url) as session:
            if queries.find_run(session, run_id=run_id) is None:
                return None
            return choose_reference(session, run_id=run_id).run_id

    def run_checks(self, run_id: int) -> RunChecks | None:
        """The run's quality, per stage, and its checks (the latest version of each); None if
        there is no such run."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id=run_id)
            if run is None:
                return None
            latest: dict[str, Any] = {}
            for row in queries.check_results(session, run_id=run_id):
                if row.check_name not in latest or latest[row.check_name].version < row.version:
                    latest[row.check_name] = row
            declared = {r.name: r.declaration for r in queries.check_declarations(session)}
            rows: list[dict[str, Any]] = []
            frames: dict[str, str] = {}
            for row in sorted(latest.values(), key=lambda r: (r.stage, r.check_name)):
                details = dict(row.details or {})
                looks_at = details.get("histogram") or ""
                if not looks_at:
                    declaration = declared.get(row.check_name) or {}
                    looks_at = declaration.get("variable") or declaration.get("histogram") or ""
                if details.get("histogram"):
                    shown = frames.get(looks_at)
                    if shown is None or SEVERITY[Quality(shown)] < SEVERITY[row.quality]:
                        frames[looks_at] = str(row.quality)
                rows.append(
                    {
                        "stage": row.stage,
                        "check": row.check_name,
                        "version": row.version,
                        "quality": str(row.quality),
                        "sentence": row.sentence,
                        "looks_at": looks_at,
                        "reference_run": row.reference_run,
                        "statistics": row.statistics,
                        "evaluated": row.evaluated_at,
                    }
                )
            stages = queries.run_stage_qualities(session, run_ids=[run_id]).get(run_id, {})
            choice = choose_reference(session, run_id=run_id)
            return RunChecks(
                quality=str(run.quality) if run.quality is not None else None,
                stages={stage: str(q) for stage, q in stages.items()},
                checks=pd.DataFrame(rows, columns=CHECK_COLUMNS),
                frames=frames,
                reference_run=choice.run_id,
                reference_reason=choice.reason,
            )

    def pin_reference(
        self, run_id: int, reference_run: int | None, *, actor: Actor, for_type: bool, comment: str
    ) -> None:
        """Pin a reference for this run (or, ``for_type``, for every run of its type); None lifts
        the pin. Recorded in the changes.

        Raises:
            InvalidValueError, NotFoundError: one sentence saying why not.
        """
        user = actor.require("pin_reference_type" if for_type else "pin_reference_run")
        with transaction(self.database_url) as session:
            run = queries.get_run(session, run_id=run_id)
            queries.pin_reference(
                session,
                user=user,
                reference_run=reference_run,
                run_type=run.run_type if for_type else None,
                run_id=None if for_type else run_id,
                comment=comment,
            )

    # --- sign-off and certification --------------------------------------------------------------

    def run_certification(self, run_id: int) -> RunCertification | None:
        """The run's sign-off state, form and decisions; None if there is no such run."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id=run_id)
            if run is None:
                return None
            state = queries.current_certification(run)
            automatic = queries.run_stage_qualities(session, run_ids=[run_id]).get(run_id, {})
            rows = [
                {
                    "at": d.at,
                    "action": d.action,
                    "state": str(d.state),
                    "verdict": str(d.verdict) if d.verdict is not None else "",
                    "stages": ", ".join(f"{k} {v}" for k, v in d.stages.items()),
                    "user": d.user,
                    "role": d.role,
                    "comment": d.comment,
                }
                for d in queries.run_decisions(session, run_id=run_id)
            ]
            return RunCertification(
                state=str(state) if state is not None else None,
                verdict=str(run.verdict) if run.verdict is not None else None,
                description=describe_certification(state, run.verdict),
                automatic={stage: str(q) for stage, q in automatic.items()},
                form={
                    stage: str(q)
                    for stage, q in queries.sign_off_form(session, run_id=run_id).items()
                },
                decisions=pd.DataFrame(rows, columns=DECISION_COLUMNS),
            )

    def decide(
        self,
        run_id: int,
        action: str,
        *,
        actor: Actor,
        comment: str,
        stages: dict[str, str] | None = None,
    ) -> None:
        """Sign the run off (``stages``: stage → Good or Bad, the others from the form), certify
        it, or send it back to sign-off (``reopen``).

        Raises:
            PermissionDenied: the actor's role may not. InvalidValueError, NotFoundError: the
                decision is not possible now, a bad stage or decision, no comment.
        """
        if action not in ("sign_off", "certify", "reopen"):
            raise InvalidValueError(f"{action!r} is not a decision.")
        user = actor.require(action)
        with transaction(self.database_url) as session:
            decisions = None
            if action == "sign_off":
                start = queries.sign_off_form(session, run_id=run_id)
                decisions = parse_stage_decisions(stages or {}, start)
            queries.decide(
                session,
                run_id=run_id,
                action=action,
                user=user,
                role=str(actor.role),
                comment=comment,
                stages=decisions,
            )

    def good_runs(self, run_types: list[str] | None = None) -> pd.DataFrame:
        """The good-run list (certified Good runs) with the versions they were certified under."""
        with transaction(self.database_url) as session:
            runs = queries.good_runs(session, run_types=run_types or None)
        rows = [r.as_dict() for r in runs]
        for row in rows:
            row["end_time"] = row["end_time"] or ""
            row["check_versions"] = ";".join(
                f"{k}:{v}" for k, v in sorted(row["check_versions"].items())
            )
        return pd.DataFrame(rows, columns=GOOD_RUN_COLUMNS)

    # --- calibrations -----------------------------------------------------------------------------

    def calibrations(self) -> pd.DataFrame:
        """Every calibration version, oldest first: validity, source laser run, by whom, when,
        and the mean gain and time offset per PMT type (columns :data:`CALIBRATION_COLUMNS`
        and ``gain_<type>``, ``offset_<type>``)."""
        types = detector.load_pmts()["type"].to_numpy()
        rows = []
        with transaction(self.database_url) as session:
            for c in queries.list_calibrations(session):
                gains = array_from_bytes(c.gains)
                offsets = array_from_bytes(c.time_offsets)
                row: dict[str, Any] = {
                    "version": c.version,
                    "valid_from_run": c.valid_from_run,
                    "valid_to_run": c.valid_to_run,
                    "source_run": c.source_run,
                    "created_at": c.created_at,
                    "created_by": c.created_by or "",
                    "comment": c.comment or "",
                }
                for pmt_type in sorted(set(types)) if len(types) == len(gains) else []:
                    fitted = (types == pmt_type) & (gains > 0)
                    row[f"gain_{pmt_type}"] = float(gains[fitted].mean()) if fitted.any() else None
                    row[f"offset_{pmt_type}"] = (
                        float(offsets[fitted].mean()) if fitted.any() else None
                    )
                rows.append(row)
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=CALIBRATION_COLUMNS)

    def calibration_map(self, version: int) -> pd.DataFrame:
        """A version's constants per PMT, with the PMT map's coordinates: pmt_id, type,
        aitoff_x, aitoff_y, gain, offset_ns, status.

        Raises:
            NotFoundError: no such version.
        """
        with transaction(self.database_url) as session:
            c = queries.get_calibration(session, version=version)
            gains = array_from_bytes(c.gains)
            offsets = array_from_bytes(c.time_offsets)
            status = array_from_bytes(c.pmt_status)
        pmts = detector.load_pmts()
        frame = pmts[["pmt_id", "type", "aitoff_x", "aitoff_y"]].iloc[: len(gains)].copy()
        frame["gain"], frame["offset_ns"], frame["status"] = gains, offsets, status.astype(int)
        return frame.reset_index(drop=True)

    def compare_calibrations(self, old: int, new: int) -> pd.DataFrame:
        """The PMTs that moved from version ``old`` to ``new`` (dqm.calibdiff: more than 5 % in
        gain or 1 ns in time): pmt_id, type, gain_old, gain_new, gain_change, offset_old,
        offset_new, offset_change_ns.

        Raises:
            NotFoundError: no such version. InvalidValueError: they hold different PMTs.
        """
        a, b = self.calibration_map(old), self.calibration_map(new)
        try:
            moved = moved_pmts(a["gain"], a["offset_ns"], b["gain"], b["offset_ns"])
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None
        index = moved.pmt_id
        return pd.DataFrame(
            {
                "pmt_id": a["pmt_id"].to_numpy()[index],
                "type": a["type"].to_numpy()[index],
                "gain_old": a["gain"].to_numpy()[index],
                "gain_new": b["gain"].to_numpy()[index],
                "gain_change": moved.gain_change,
                "offset_old": a["offset_ns"].to_numpy()[index],
                "offset_new": b["offset_ns"].to_numpy()[index],
                "offset_change_ns": moved.offset_change_ns,
            }
        )

    # --- comments ---------------------------------------------------------------------------------

    def run_comments(self, run_id: int) -> pd.DataFrame:
        """A run's comments, oldest first: columns :data:`COMMENT_COLUMNS` (``parent``: the
        comment replied to, or None)."""
        with transaction(self.database_url) as session:
            rows = [
                {
                    "id": c.id,
                    "parent": c.parent_id,
                    "target": c.target,
                    "user": c.user,
                    "role": c.role,
                    "at": c.at,
                    "text": c.text,
                }
                for c in queries.comments_of_run(session, run_id=run_id)
            ]
        return pd.DataFrame(rows, columns=COMMENT_COLUMNS)

    def add_comment(
        self,
        run_id: int,
        text: str,
        *,
        actor: Actor,
        target: str = "run",
        parent_id: int | None = None,
    ) -> int:
        """Comment on a run, one of its histograms (``histogram:STAGE/NAME``) or a PMT
        (``pmt:ID``), or reply to a comment. Returns the comment's id.

        Raises:
            PermissionDenied, InvalidValueError, NotFoundError: one sentence saying why not.
        """
        user = actor.require("comment")
        with transaction(self.database_url) as session:
            return queries.add_comment(
                session,
                run_id=run_id,
                text=text,
                user=user,
                role=str(actor.role),
                target=target,
                parent_id=parent_id,
            ).id

    def record_visit(self, user: str) -> dt.datetime | None:
        """A logged-in user opens the dashboard: when they did before (None: never)."""
        with transaction(self.database_url) as session:
            return queries.record_visit(session, user=user)

    def runs_with_new_comments(self, run_ids: list[int], since: dt.datetime) -> dict[int, int]:
        with transaction(self.database_url) as session:
            return queries.runs_with_new_comments(session, run_ids=run_ids, since=since)

    # --- the shift overview ---------------------------------------------------------------------

    def overview(self, now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
        """The shift overview's tiles (:data:`TILES`), each read on its own: a tile whose data
        cannot be read holds ``{"error": sentence}`` instead of stale numbers."""
        now = now or utcnow()
        readers = {
            "current_run": self._tile_current_run,
            "processing": self._tile_processing,
            "alarms": self._tile_alarms,
            "last_runs": self._tile_last_runs,
            "sign_off": self._tile_sign_off,
            "health": self._tile_health,
        }
        tiles: dict[str, dict[str, Any]] = {}
        for name in TILES:
            try:
                with transaction(self.database_url) as session:
                    tiles[name] = readers[name](session, now)
            except Exception as exc:  # noqa: BLE001 - a tile that cannot be read says so
                tiles[name] = {"error": f"cannot be read now: {first_line(exc)}"}
        return tiles

    def _tile_current_run(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        taking = queries.recent_runs(session, status=RunStatus.DATA_TAKING, limit=1)
        if not taking:
            return {"run": None}
        run = taking[0]
        duration = max((now - run.start_time).total_seconds(), 0.0)
        events = run.n_events or queries.events_so_far(session, run_id=run.run_id)
        return {
            "run": run.run_id,
            "run_type": run.run_type,
            "duration_s": duration,
            "events": events,
            "rate_hz": events / duration if duration > 0 and events else None,
        }

    def _tile_processing(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        waiting, oldest = queries.processing_lag(session)
        return {
            "waiting": waiting,
            "lag_s": (now - oldest).total_seconds() if oldest is not None else 0.0,
        }

    def _tile_alarms(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        counts = queries.alarm_counts(session)
        return {"open": dict(counts.open), "acknowledged": dict(counts.acknowledged)}

    def _tile_last_runs(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        runs = queries.recent_runs(session, limit=10)
        return {
            "runs": [
                (r.run_id, str(r.quality) if r.quality is not None else "", str(r.status))
                for r in runs
            ]
        }

    def _tile_sign_off(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        counts = queries.sign_off_counts(session)
        first = [r.run_id for r in queries.runs_to_sign_off(session, limit=5)]
        return {"counts": counts, "first": first}

    def _tile_health(self, session: Any, now: dt.datetime) -> dict[str, Any]:
        began = time.perf_counter()
        last, out = queries.job_activity(session)
        waiting, _oldest = queries.processing_lag(session)
        quiet = (now - last).total_seconds() if last is not None else None
        return {
            "database_ms": (time.perf_counter() - began) * 1000,
            "jobs_out": out,
            "last_job_change_s": quiet,
            "server_quiet": bool(waiting) and (quiet is None or quiet > QUIET_SERVER_S),
        }

    # --- the JSON API (app.api): plain JSON-able data, one page of a keyset pagination each ------

    def api_runs(
        self,
        *,
        after: int | None,
        limit: int,
        run_types: list[str] | None = None,
        statuses: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs by run number after ``after``: attributes, status, quality, sign-off."""
        with transaction(self.database_url) as session:
            return [
                _api_run(run)
                for run in queries.runs_page(
                    session, after=after, limit=limit, run_types=run_types, statuses=statuses
                )
            ]

    def api_run(self, run_id: int) -> dict[str, Any] | None:
        """One run as :meth:`api_runs` gives it, with its quality per stage; None: no such run."""
        with transaction(self.database_url) as session:
            run = queries.find_run(session, run_id=run_id)
            if run is None:
                return None
            stages = queries.run_stage_qualities(session, run_ids=[run_id]).get(run_id, {})
            return {**_api_run(run), "stages": {k: str(v) for k, v in stages.items()}}

    def api_quality(self, run_id: int) -> dict[str, Any] | None:
        """A run's quality, per stage, and its checks' latest results; None: no such run."""
        checks = self.run_checks(run_id)
        if checks is None:
            return None
        return {
            "run": run_id,
            "quality": checks.quality,
            "stages": checks.stages,
            "reference_run": checks.reference_run,
            "checks": [
                {
                    "check": row["check"],
                    "version": int(row["version"]),
                    "stage": row["stage"],
                    "quality": row["quality"],
                    "sentence": row["sentence"],
                    "reference_run": _int_or_none(row["reference_run"]),
                    "statistics": _float_or_none(row["statistics"]),
                    "evaluated_at": format_time(row["evaluated"]),
                }
                for row in checks.checks.to_dict("records")
            ],
        }

    def api_analyses(
        self, *, analysis: str, version: int, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The results of a version of an analysis by run number after ``after``."""
        with transaction(self.database_url) as session:
            return [
                {
                    "run": result.run_id,
                    "analysis": analysis,
                    "version": version,
                    "stored_at": format_time(result.created_at),
                    "values": {
                        v.variable: {"value": v.value, "error": v.error, "unit": v.unit}
                        for v in values
                    },
                }
                for result, values in queries.analysis_values_page(
                    session, analysis=analysis, version=version, after=after, limit=limit
                )
            ]

    def api_good_runs(
        self,
        *,
        after: int | None,
        limit: int,
        run_types: list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[dict[str, Any]]:
        """The good-run list by run number after ``after``."""
        start = max(since or 0, (after + 1) if after is not None else 0) or None
        with transaction(self.database_url) as session:
            runs = queries.good_runs(
                session, run_types=run_types, since=start, until=until, limit=limit
            )
        return [r.as_dict() for r in runs]

    # --- the checks' editor: back-testing and saving ---------------------------------------------

    def _catalog(self, session: Any) -> CheckCatalog:
        """The checks as they hold: the files' declarations (read once; as the job server and
        ``dqm checks`` read them) with the versions saved by hand in their place."""
        if self._declared is None:
            self._declared = load_checks(self.checks_file)
        return with_saved_versions(session, self._declared)

    def checks(self) -> list[CheckInfo]:
        """Every check as it holds now, by stage and name.

        Raises:
            DeclarationError: the checks file is wrong (one sentence naming file and entry).
        """
        with transaction(self.database_url) as session:
            catalog = self._catalog(session)
        return [_check_info(c) for c in sorted(catalog, key=lambda c: (c.stage, c.name))]

    def backtest_check(
        self,
        name: str,
        settings: dict[str, str],
        n_runs: int = 50,
        progress: Progress | None = None,
    ) -> Backtest:
        """The latest ``n_runs`` finished runs of the check's types judged by check ``name`` as
        it is and with ``settings`` (``key: value text``). Nothing is saved.

        Raises:
            DeclarationError: no such check, or a bad parameter or value.
        """
        with transaction(self.database_url) as session:
            current = self._catalog(session).get(name)
            proposed = current.with_settings(settings)
            run_ids = backtest_runs(
                session,
                run_types=sorted(current.run_types) if current.run_types else None,
                n_runs=n_runs,
            )
            rows = backtest(
                session,
                current=current,
                proposed=proposed,
                run_ids=run_ids,
                progress=_counter(progress, len(run_ids)),
            )
        changed = {
            k: proposed.spec.parameters[k].to_text(v)
            for k, v in proposed.parameters.items()
            if current.parameters.get(k) != v
        }
        what = ", ".join(f"{k} = {v}" for k, v in changed.items()) or "no change"
        return Backtest(f"Check {name} v{current.version} against {what}", _backtest_frame(rows))

    def save_check(self, name: str, settings: dict[str, str], *, actor: Actor, comment: str) -> int:
        """Save check ``name`` with ``settings`` as its new version (recorded in the changes);
        the job server evaluates it from its next evaluation. Returns the new version.

        Raises:
            InvalidValueError: ``user`` may not write, or nothing changes.
            DeclarationError: no such check, or a bad parameter or value.
        """
        with transaction(self.database_url) as session:
            current = self._catalog(session).get(name)
            proposed = current.with_settings(settings)
            if dict(proposed.parameters) == dict(current.parameters):
                raise InvalidValueError(
                    f"check {name}: the proposed parameters are those of version "
                    f"{current.version}; there is nothing to save."
                )
            saved = save_check_version(
                session,
                current=current,
                proposed=proposed,
                user=actor.require("edit_checks"),
                comment=comment,
            )
            return saved.version

    def backtest_cuts(
        self,
        run_type: str,
        cuts: HitRateCuts,
        n_runs: int = 50,
        progress: Progress | None = None,
    ) -> Backtest:
        """The latest ``n_runs`` finished runs of ``run_type`` judged by the checks that read the
        PMT cuts, under the type's saved cuts and under ``cuts``. Nothing is saved."""
        with transaction(self.database_url) as session:
            checks = cut_checks(self._catalog(session), run_type)
            run_ids = backtest_runs(session, run_types=[run_type], n_runs=n_runs)
            rows = backtest_cuts(
                session,
                checks=checks,
                proposed_cuts=cuts,
                run_ids=run_ids,
                progress=_counter(progress, len(run_ids)),
            )
        return Backtest(
            f"PMT cuts of {run_type} runs: {cuts.describe()}, by "
            + (", ".join(c.name for c in checks) or "no check (none reads the cuts)"),
            _backtest_frame(rows),
        )

    # --- alarms ---------------------------------------------------------------------------------

    def alarms(
        self,
        *,
        states: list[str] | None = None,
        severity: str | None = None,
        run_id: int | None = None,
        limit: int = 100,
    ) -> pd.DataFrame:
        """Alarms, newest first, columns :data:`ALARM_COLUMNS`."""
        with transaction(self.database_url) as session:
            alarms = queries.list_alarms(
                session,
                states=[AlarmState(s) for s in states] if states else None,
                severity=Quality(severity) if severity else None,
                run_id=run_id,
                limit=limit,
            )
            rows = [
                {
                    "id": a.id,
                    "state": str(a.state),
                    "severity": str(a.severity),
                    "run": a.run_id,
                    "check": a.check_name or a.kind,
                    "sentence": a.sentence,
                    "opened": a.opened_at,
                    "acknowledged_by": a.acknowledged_by or "",
                    "resolved_by": a.resolved_by or ("the check" if a.resolved_at else ""),
                    "notifications": a.notifications,
                }
                for a in alarms
            ]
        return pd.DataFrame(rows, columns=ALARM_COLUMNS)

    def alarm_history(self, alarm_id: int) -> pd.DataFrame:
        """An alarm's transitions and notices, oldest first: at, action, state, user, comment."""
        with transaction(self.database_url) as session:
            alarm = queries.get_alarm(session, alarm_id=alarm_id)
            rows = [
                {
                    "at": e.at,
                    "action": e.action,
                    "state": str(e.state),
                    "user": e.user or "",
                    "comment": e.comment,
                }
                for e in alarm.events
            ]
        return pd.DataFrame(rows, columns=["at", "action", "state", "user", "comment"])

    def alarm_counts(self) -> dict[str, dict[str, int]]:
        """Alarms not resolved: ``{"open": {severity: n}, "acknowledged": {...}}``."""
        with transaction(self.database_url) as session:
            counts = queries.alarm_counts(session)
        return {"open": dict(counts.open), "acknowledged": dict(counts.acknowledged)}

    def alarms_token(self) -> tuple[object, ...]:
        with transaction(self.database_url) as session:
            return queries.alarms_token(session)

    def acknowledge_alarm(self, alarm_id: int, *, actor: Actor, comment: str) -> None:
        """Acknowledge an open alarm (a login and a comment needed; recorded with who and when).

        Raises:
            InvalidValueError, NotFoundError: one sentence saying why not.
        """
        with transaction(self.database_url) as session:
            queries.acknowledge_alarm(
                session, alarm_id=alarm_id, user=actor.require("acknowledge_alarm"), comment=comment
            )

    def close_alarm(self, alarm_id: int, *, actor: Actor, comment: str) -> None:
        """Close an alarm by hand, with a comment (recorded with who and when).

        Raises:
            InvalidValueError, NotFoundError: one sentence saying why not.
        """
        with transaction(self.database_url) as session:
            queries.close_alarm(
                session, alarm_id=alarm_id, user=actor.require("close_alarm"), comment=comment
            )

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

    # --- analyses ---------------------------------------------------------------------------

    def analysis_catalog(self) -> list[AnalysisVersion]:
        """Every version of an analysis that was declared or has results, by name and version."""
        with transaction(self.database_url) as session:
            counts = queries.result_counts(session)
            catalog = {
                (d.name, d.version): AnalysisVersion(
                    analysis=d.name,
                    version=d.version,
                    description=str(d.declaration.get("description") or ""),
                    variables=_variables(d.declaration),
                    n_results=counts.get((d.name, d.version), 0),
                    declared=True,
                )
                for d in queries.analysis_declarations(session)
            }
            for (name, version), n in counts.items():
                if (name, version) not in catalog:
                    stored = queries.analysis_variables(session, analysis=name, version=version)
                    catalog[name, version] = AnalysisVersion(
                        analysis=name,
                        version=version,
                        description="",
                        variables=tuple(VariableInfo(v, unit) for v, unit in stored.items()),
                        n_results=n,
                        declared=False,
                    )
        return [catalog[key] for key in sorted(catalog)]

    def trend(
        self,
        analysis: str,
        version: int,
        variables: list[str],
        *,
        run_types: list[str] | None = None,
        min_run: int | None = None,
        max_run: int | None = None,
        since: dt.datetime | None = None,
        include_tags: list[str] | None = None,
        exclude_tags: list[str] | None = None,
        after_run: int | None = None,
    ) -> pd.DataFrame:
        """The values of ``variables`` over runs (see queries.analysis_trend_columns for the filters),
        columns :data:`TREND_POINT_COLUMNS`, by run then variable; one query, read as columns.

        Raises:
            InvalidValueError: a tag is not a valid tag.
        """
        with transaction(self.database_url) as session:
            columns = queries.analysis_trend_columns(
                session,
                analysis=analysis,
                version=version,
                variables=variables,
                run_types=run_types or None,
                min_run=min_run,
                max_run=max_run,
                since=since,
                include_tags=include_tags or (),
                exclude_tags=exclude_tags or (),
                after_run=after_run,
            )
        return pd.DataFrame(columns, columns=TREND_POINT_COLUMNS)

    def trend_token(
        self, analysis: str, version: int, before_run: int | None = None
    ) -> tuple[object, ...]:
        """Changes whenever a result of the version on a run before ``before_run`` changes."""
        with transaction(self.database_url) as session:
            return queries.analysis_trend_token(
                session, analysis=analysis, version=version, before_run=before_run
            )

    def all_tags(self) -> list[str]:
        """Every run tag in use."""
        with transaction(self.database_url) as session:
            return queries.all_tags(session)

    def run_analyses(self, run_id: int) -> list[RunAnalysis]:
        """Every version of an analysis that has a result or a job on the run, by name and
        version: the result's variables, lineage and figures, and the state of the latest job
        (with its reason and traceback when it failed)."""
        with transaction(self.database_url) as session:
            results = {
                (r.analysis, r.version): r
                for r in queries.analysis_results(session, run_id=run_id, limit=None)
            }
            jobs: dict[tuple[str, int], Any] = {}
            for candidate in queries.analysis_jobs(session, run_id=run_id):  # newest first
                if candidate.analysis is not None and candidate.analysis_version is not None:
                    jobs.setdefault((candidate.analysis, candidate.analysis_version), candidate)
            figures = queries.figure_names(session, result_ids=[r.id for r in results.values()])
            declarations = {
                (d.name, d.version): d.declaration
                for name in sorted({key[0] for key in (*results, *jobs)})
                for d in queries.analysis_declarations(session, name=name)
            }
            analyses = []
            for key in sorted({*results, *jobs}):
                result, job = results.get(key), jobs.get(key)
                declared = {v.name: v for v in _variables(declarations.get(key, {}))}
                values = tuple(
                    AnalysisVariableValue(
                        variable=v.variable,
                        value=v.value,
                        error=v.error,
                        unit=v.unit,
                        meaning=declared[v.variable].meaning if v.variable in declared else "",
                        expected=declared[v.variable].expected if v.variable in declared else None,
                    )
                    for v in (result.values if result is not None else [])
                )
                analyses.append(
                    RunAnalysis(
                        analysis=key[0],
                        version=key[1],
                        description=str(declarations.get(key, {}).get("description") or ""),
                        status=JOB_STATUS.get(str(job.state), str(job.state))
                        if job is not None
                        else "stored",
                        values=values,
                        lineage=dict(result.lineage or {}) if result is not None else None,
                        data=dict(result.data or {}) if result is not None else None,
                        result_id=result.id if result is not None else None,
                        created_at=result.created_at if result is not None else None,
                        figures=tuple(figures.get(result.id, [])) if result is not None else (),
                        job_id=job.id if job is not None else None,
                        job_state=str(job.state) if job is not None else None,
                        error=job.error if job is not None else None,
                        traceback=job.traceback if job is not None else None,
                    )
                )
        return analyses

    def analysis_figure(self, result_id: int, name: str) -> bytes:
        """A figure of an analysis result, as PNG.

        Raises:
            NotFoundError: no such figure.
        """
        with transaction(self.database_url) as session:
            return queries.analysis_figure(session, result_id=result_id, name=name)

    def backfills(self, limit: int = 10) -> pd.DataFrame:
        """The latest backfills, newest first, columns :data:`BACKFILL_COLUMNS`: which analysis
        and runs, when and by whom, its jobs, how many finished (done, failed or to check), done
        and failed, and ``progress`` (percent finished)."""
        with transaction(self.database_url) as session:
            rows = []
            for p in queries.backfill_progress(session, limit=limit):
                b, by_state = p.backfill, p.jobs_by_state
                failed = by_state.get(JobState.FAILED, 0) + by_state.get(JobState.TOCHECK, 0)
                since = "…" if b.since_run is None else str(b.since_run)
                until = "…" if b.until_run is None else str(b.until_run)
                rows.append(
                    {
                        "backfill": b.id,
                        "analysis": b.analysis,
                        "version": b.version,
                        "runs": f"{since}–{until} ({b.n_runs:,} runs)",
                        "created": b.created_at,
                        "by": b.created_by or "",
                        "jobs": p.total,
                        "finished": p.finished,
                        "done": by_state.get(JobState.DONE, 0),
                        "failed": failed,
                        "progress": round(100.0 * p.finished / p.total, 1) if p.total else 0.0,
                    }
                )
        return pd.DataFrame(rows, columns=BACKFILL_COLUMNS)

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
        actor: Actor,
    ) -> None:
        user = actor.require("edit_cuts")
        with transaction(self.database_url) as session:
            queries.save_cut_defaults(
                session,
                run_type=run_type,
                dead_cut=dead_cut,
                hot_cut=hot_cut,
                normal_band=normal_band,
                user=user,
            )

    def kept_events(self, run_id: int) -> list[keptevents.KeptEvent]:
        """The raw events kept of a run for the event display (see ``queries.run_kept_events``:
        the first and the highest-energy physics events of each done file while the run is at
        work, of the run once it is final), in file order, each with its file's ``seq``."""
        with transaction(self.database_url) as session:
            return queries.run_kept_events(session, run_id=run_id)

    # --- PMT status history and masks --------------------------------------------------------------

    def pmt_changes(self, run_id: int) -> PmtChangeSummary | None:
        """A run's PMT classes and what changed since the previous run of its type (None: the
        run has no PMT status yet)."""
        types = detector.load_pmts()["type"].astype(str).to_numpy()
        with transaction(self.database_url) as session:
            found = queries.pmt_changes(session, run_id=run_id)
            if found is None:
                return None
            current, previous, changes = found
            rows = changes.rows() if changes is not None else []
            return PmtChangeSummary(
                run_id=run_id,
                run_type=current.run_type,
                counts={"dead": current.n_dead, "hot": current.n_hot, "noisy": current.n_noisy},
                previous_run=previous.run_id if previous is not None else None,
                change_counts=changes.counts() if changes is not None else {},
                changes=pd.DataFrame(
                    {
                        "change": [c for c, _ in rows],
                        "pmt_id": [p for _, p in rows],
                        "type": [types[p] if p < len(types) else "" for _, p in rows],
                    },
                    columns=["change", "pmt_id", "type"],
                ),
                updated_at=current.updated_at,
            )

    def pmt_history(
        self, pmt_id: int, run_type: str | None = None, limit: int | None = 200
    ) -> tuple[pd.DataFrame, int | None]:
        """One PMT over the ``limit`` latest runs (of ``run_type``), oldest first (columns
        :data:`PMT_HISTORY_COLUMNS`), and the first run in which it was dead.

        Raises:
            InvalidValueError: no such PMT.
        """
        with transaction(self.database_url) as session:
            rows = queries.pmt_history(session, pmt_id=pmt_id, run_type=run_type, limit=limit)
            first_dead = queries.first_dead_run(session, pmt_id=pmt_id)
        frame = pd.DataFrame(
            [{column: getattr(r, column) for column in PMT_HISTORY_COLUMNS} for r in rows],
            columns=list(PMT_HISTORY_COLUMNS),
        )
        return frame, first_dead

    def pmt_masks(self) -> pd.DataFrame:
        """Every version of the PMT mask, oldest first (columns :data:`MASK_COLUMNS`)."""
        with transaction(self.database_url) as session:
            rows = [queries.mask_summary(m) for m in queries.list_pmt_masks(session)]
        return pd.DataFrame(rows, columns=list(MASK_COLUMNS))

    def mask_for_run(self, run_id: int) -> dict[str, Any] | None:
        """The mask version valid for a run (:data:`MASK_COLUMNS` and ``pmts``), if any."""
        with transaction(self.database_url) as session:
            mask = queries.pmt_mask_for_run(session, run_id=run_id)
            if mask is None:
                return None
            return {**queries.mask_summary(mask), "pmts": pmtstatus.decode_ids(mask.pmts).tolist()}

    def derive_mask(
        self,
        *,
        run_type: str,
        until_run: int,
        consecutive: int,
        actor: Actor,
        comment: str = "",
        valid_from_run: int | None = None,
    ) -> int:
        """A new mask version from the history (see queries.derive_pmt_mask); its version."""
        user = actor.require("edit_masks")
        with transaction(self.database_url) as session:
            queries.get_run(session, run_id=until_run)
            mask = queries.derive_pmt_mask(
                session,
                run_type=run_type,
                until_run=until_run,
                consecutive=consecutive,
                user=user,
                valid_from_run=valid_from_run,
                comment=comment,
            )
            return mask.version

    def edit_mask(
        self, *, valid_from_run: int, add: str, remove: str, actor: Actor, comment: str
    ) -> int:
        """A new mask version by hand: the one valid for ``valid_from_run`` with the PMTs of
        ``add`` masked and those of ``remove`` used again (``17, 100-120``); its version.

        Raises:
            InvalidValueError: a bad PMT id or range, no reason given, nothing would change.
        """
        user = actor.require("edit_masks")
        added, removed = pmtstatus.parse_pmt_ids(add), pmtstatus.parse_pmt_ids(remove)
        if not comment.strip():
            raise InvalidValueError("say why the mask changes: the comment is empty.")
        if valid_from_run < 0:
            raise InvalidValueError(
                f"a mask is valid from a run of 0 or more, not {valid_from_run}."
            )
        with transaction(self.database_url) as session:
            mask = queries.edit_pmt_mask(
                session,
                valid_from_run=valid_from_run,
                add=added,
                remove=removed,
                user=user,
                comment=comment.strip(),
            )
            return mask.version

    def set_run_comment(self, run_id: int, comment: str, actor: Actor) -> None:
        user = actor.require("comment")
        with transaction(self.database_url) as session:
            queries.set_run_comment(session, run_id=run_id, comment=comment, user=user)

    def change_run_tags(
        self,
        run_id: int,
        actor: Actor,
        add: list[str] | None = None,
        remove: list[str] | None = None,
    ) -> list[str]:
        """Add and remove tags of a run (recorded as a change); the run's tags after."""
        user = actor.require("run_tags")
        with transaction(self.database_url) as session:
            return queries.change_run_tags(
                session, run_id=run_id, add=add or (), remove=remove or (), user=user
            )

    def retry_job(self, job_id: int, actor: Actor, reason: str = "") -> None:
        """Retry a failed job; one of a certified run needs an expert and the reason (the run
        goes back to sign-off).

        Raises:
            PermissionDenied, InvalidValueError, NotFoundError: one sentence saying why not.
        """
        with transaction(self.database_url) as session:
            job = queries.get_job(session, job_id=job_id)
            run = queries.find_run(session, run_id=job.run_id) if job.run_id is not None else None
            certified = run is not None and run.certification == Certification.CERTIFIED
        user = actor.require("reprocess_certified" if certified else "retry_job")
        with transaction(self.database_url) as session:
            queries.retry_job_as(
                session, job_id=job_id, user=user, role=str(actor.role), reason=reason
            )

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
