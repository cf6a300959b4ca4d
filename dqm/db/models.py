"""SQLAlchemy models of the DQM database.

The schema belongs to Alembic (``migrations/``): these models describe it, a test checks that the
migrations and the models do not drift, and production databases are created only by
``dqm init-db`` (``alembic upgrade head``).

Per-PMT arrays and histogram contents are stored as little-endian binary blobs (see
:mod:`dqm.histcodec`); on MariaDB/MySQL they use ``LONGBLOB`` since a ``BLOB`` holds only 64 kB.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dqm.checks.quality import Quality
from dqm.states import (
    AlarmState,
    Certification,
    FileState,
    JobState,
    MessageOutcome,
    RunStatus,
)
from dqm.times import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Binary column for arrays: LONGBLOB on MariaDB/MySQL (BLOB holds only 64 kB), BYTEA/BLOB elsewhere.
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
#: Long text (raw messages, tracebacks): LONGTEXT on MariaDB/MySQL (TEXT holds only 64 kB).
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class EnumString(TypeDecorator[enum.StrEnum]):
    """A ``VARCHAR`` holding the value of a string enum; reads back the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[enum.StrEnum], length: int = 20) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Any) -> enum.StrEnum | None:
        return None if value is None else self.enum_class(value)


class Base(DeclarativeBase):
    """Declarative base with the naming convention that migrations rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """A data-taking run."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_end_time", "end_time"),
        Index("ix_runs_status_end_time", "status", "end_time"),
        Index("ix_runs_start_time", "start_time"),
        Index("ix_runs_run_type", "run_type"),
        Index("ix_runs_run_type_quality", "run_type", "quality"),
        Index("ix_runs_certification", "certification", "verdict"),
    )

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    detector: Mapped[str] = mapped_column(String(32), default="CD")
    run_type: Mapped[str] = mapped_column(String(32))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[RunStatus] = mapped_column(EnumString(RunStatus), default=RunStatus.DATA_TAKING)
    n_events: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    n_files: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sampling_fraction: Mapped[float] = mapped_column(Float, default=1.0)
    rec_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # from run_start, for analyses: the calibration source and its position, the nominal trigger
    # rate, the DAQ's software
    source: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source_z_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    trigger_rate_hz: Mapped[float | None] = mapped_column(Float, nullable=True)
    software_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the worst quality of the run's checks at their last evaluation (None: not judged yet)
    quality: Mapped[Quality | None] = mapped_column(EnumString(Quality, 16), nullable=True)
    # the latest sign-off decision's state and verdict (None: no decision yet; the run is OPEN
    # for sign-off once All Completed); the decisions themselves are in run_decisions
    certification: Mapped[Certification | None] = mapped_column(
        EnumString(Certification, 16), nullable=True
    )
    verdict: Mapped[Quality | None] = mapped_column(EnumString(Quality, 16), nullable=True)
    # when the retention policy dropped its per-file histograms and PMT sums (None: not yet)
    compacted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    files: Mapped[list[File]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="File.seq",
    )

    def __repr__(self) -> str:
        return f"Run({self.run_id}, {self.run_type!r}, {self.status})"


class File(Base):
    """A raw ROOT file of a run (one sequence number)."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index("ix_files_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(16), nullable=True)  # adler32, 8 hex digits
    n_events: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    arrived_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[FileState] = mapped_column(EnumString(FileState), default=FileState.ANNOUNCED)

    run: Mapped[Run] = relationship(back_populates="files")

    def __repr__(self) -> str:
        return f"File({self.run_id}.{self.seq}, {self.state})"


class Job(Base):
    """A unit of work of the job server (process a file, merge a run, an analysis, a check)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_not_before", "state", "not_before"),
        Index("ix_jobs_run_id_kind", "run_id", "kind"),
        Index("ix_jobs_file_id", "file_id"),
        Index("ix_jobs_analysis_analysis_version", "analysis", "analysis_version"),
        Index("ix_jobs_backfill_id", "backfill_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), nullable=True
    )
    state: Mapped[JobState] = mapped_column(EnumString(JobState), default=JobState.TODO)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # tries that ended, or are out
    # times its job server vanished while it was out (they use up no attempt; see transition_job)
    interruptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    not_before: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # retry backoff
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(LongText, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    code_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # an analysis job's analysis and version (NULL for other kinds)
    analysis: Mapped[str | None] = mapped_column(String(64), nullable=True)
    analysis_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the traceback of the last failure, where the error is in code (an analysis that raised)
    traceback: Mapped[str | None] = mapped_column(LongText, nullable=True)
    backfill_id: Mapped[int | None] = mapped_column(
        ForeignKey("backfills.id", ondelete="SET NULL"), nullable=True
    )

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind!r}, run {self.run_id}, {self.state})"


class Message(Base):
    """A message received from the broker, kept whatever its outcome (nothing is lost)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_received_at", "received_at"),
        Index("ix_messages_outcome", "outcome"),
        Index("ix_messages_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique when present; a message rejected because it has no valid id stores NULL.
    message_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[str] = mapped_column(LongText)  # the body exactly as received
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[MessageOutcome] = mapped_column(EnumString(MessageOutcome))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Histogram(Base):
    """A histogram of one file (``file_id`` set) or of a whole run (``file_id`` NULL: the merge)."""

    __tablename__ = "histograms"
    __table_args__ = (
        UniqueConstraint("file_id", "stage", "name"),
        Index("ix_histograms_run_id_stage_name", "run_id", "stage", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), nullable=True
    )
    stage: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(255), nullable=True)
    axes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    storage: Mapped[str] = mapped_column(String(16))
    values: Mapped[bytes] = mapped_column(Blob)
    variances: Mapped[bytes | None] = mapped_column(Blob, nullable=True)
    entries: Mapped[float] = mapped_column(Float, default=0.0)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PmtStats(Base):
    """Per-PMT sums of one file (``file_id`` set) or of a whole run (``file_id`` NULL).

    Sums rather than means, so that a run's statistics are exactly the sum of its files'. Arrays are
    float64 of length ``n_pmts``, stored as blobs losslessly compressed
    (:func:`dqm.histcodec.pack_array`; rows stored before then hold the plain bytes, which read
    the same).
    """

    __tablename__ = "pmt_stats"
    __table_args__ = (UniqueConstraint("run_id", "file_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    file_id: Mapped[int | None] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), nullable=True
    )
    n_pmts: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(BigInteger)
    livetime_ns: Mapped[float] = mapped_column(Float)  # summed readout windows, for dark rates
    hit_count: Mapped[bytes] = mapped_column(Blob)  # hits per PMT
    fired_events: Mapped[bytes] = mapped_column(Blob)  # events in which the PMT fired
    charge_sum: Mapped[bytes] = mapped_column(Blob)  # summed charge (PE)
    time_sum: Mapped[bytes] = mapped_column(Blob)  # summed hit time (ns)
    dark_count: Mapped[bytes] = mapped_column(Blob)  # hits outside the signal time window
    # the signal hits of central low-energy events, their charge and calibrated time
    # (None in rows stored before they were kept: read as zeros)
    signal_hits: Mapped[bytes | None] = mapped_column(Blob, nullable=True)
    signal_charge_sum: Mapped[bytes | None] = mapped_column(Blob, nullable=True)
    signal_time_sum: Mapped[bytes | None] = mapped_column(Blob, nullable=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Calibration(Base):
    """A version of the per-PMT calibration constants, valid from a run on."""

    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_valid_from_run", "valid_from_run"),)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    valid_from_run: Mapped[int] = mapped_column(Integer)
    valid_to_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_pmts: Mapped[int] = mapped_column(Integer)
    gains: Mapped[bytes] = mapped_column(Blob)  # ADC counts per PE
    time_offsets: Mapped[bytes] = mapped_column(Blob)  # ns
    pmt_status: Mapped[bytes] = mapped_column(Blob)  # 0 good, 1 dead, 2 hot, 3 not fitted
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class CutDefaults(Base):
    """The PMT-map cuts a run type starts from (saved from the dashboard by a logged-in user)."""

    __tablename__ = "pmt_cut_defaults"

    run_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    dead_cut: Mapped[float] = mapped_column(Float)
    hot_cut: Mapped[float] = mapped_column(Float)
    normal_low: Mapped[float] = mapped_column(Float)
    normal_high: Mapped[float] = mapped_column(Float)
    saved_by: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Change(Base):
    """Who changed what, and when: every write made through the dashboard."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # cut_defaults, retry_job, run_comment
    target: Mapped[str] = mapped_column(String(64))  # the run type, job or run changed
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EventTable(Base):
    """A file's reconstructed physics events (vertex, energy, trigger time) for the event-level
    plots: float32 columns, compressed (see :mod:`dqm.eventtable`)."""

    __tablename__ = "event_tables"
    __table_args__ = (UniqueConstraint("file_id"), Index("ix_event_tables_run_id", "run_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    n_events: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RunTag(Base):
    """A tag of a run (``messy``, ``bad``, ``ramp_up``, ...), from run_start or set by hand; the
    analyses select runs by them."""

    __tablename__ = "run_tags"
    __table_args__ = (Index("ix_run_tags_tag", "tag"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)


class AnalysisDeclaration(Base):
    """A version of an analysis as it was declared when a job server or ``dqm`` first saw it: the
    variables, units and bands of versions no longer declared stay readable."""

    __tablename__ = "analyses"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    declaration: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(512))  # the file or entry point that declared it
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Backfill(Base):
    """A version of an analysis queued over past runs (``dqm analyses backfill``)."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    since_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    until_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_runs: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AnalysisResult(Base):
    """The result of one version of an analysis on one run: exactly one per (analysis, version,
    run), stored in the transaction that marks its job DONE."""

    __tablename__ = "analysis_results"
    __table_args__ = (
        UniqueConstraint("analysis", "version", "run_id"),
        Index("ix_analysis_results_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # code, analysis and calibration versions, rec method, sampling, events and files used
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    values: Mapped[list[AnalysisValue]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="AnalysisValue.variable"
    )


class AnalysisValue(Base):
    """One variable of an analysis result. The analysis, version and run are repeated from the
    result so that a trend over runs is one range of one index."""

    __tablename__ = "analysis_values"
    __table_args__ = (
        Index("ix_analysis_values_trend", "analysis", "version", "variable", "run_id"),
    )

    result_id: Mapped[int] = mapped_column(
        ForeignKey("analysis_results.id", ondelete="CASCADE"), primary_key=True
    )
    variable: Mapped[str] = mapped_column(String(64), primary_key=True)
    analysis: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Double)
    error: Mapped[float | None] = mapped_column(Double, nullable=True)
    unit: Mapped[str] = mapped_column(String(32))


class AnalysisFigure(Base):
    """A figure of an analysis result, as PNG."""

    __tablename__ = "analysis_figures"

    result_id: Mapped[int] = mapped_column(
        ForeignKey("analysis_results.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    png: Mapped[bytes] = mapped_column(Blob)


class CheckDeclarationRow(Base):
    """A version of a check as it was declared, recorded when a job server or a command loads it."""

    __tablename__ = "checks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    declaration: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(512))
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class CheckResult(Base):
    """The last judgement of one version of a check on one run: exactly one per (check, version,
    run), replaced at each evaluation (after each merge, at the run's end, on a rerun)."""

    __tablename__ = "check_results"
    __table_args__ = (
        UniqueConstraint("check_name", "version", "run_id"),
        Index("ix_check_results_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    quality: Mapped[Quality] = mapped_column(EnumString(Quality, 16))
    sentence: Mapped[str] = mapped_column(Text)
    reference_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    statistics: Mapped[float | None] = mapped_column(Double, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )


class RunStageQuality(Base):
    """A run's quality per stage (calib, rec, pmt, analyses, processing): the worst of the stage's
    checks at their last evaluation."""

    __tablename__ = "run_stage_quality"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    quality: Mapped[Quality] = mapped_column(EnumString(Quality, 16))


class ReferencePin(Base):
    """A reference chosen by hand: for every run of a type (``run_id`` None) or for one run. The
    latest pin of a scope wins; a pin without ``reference_run`` gives the automatic choice back."""

    __tablename__ = "reference_pins"
    __table_args__ = (Index("ix_reference_pins_scope", "run_type", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reference_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")


class Alarm(Base):
    """An alarm: one per (check, run) or per stalled run, however often the check is re-evaluated.

    ``key`` is ``check:NAME:RUN`` or ``stall:RUN``."""

    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_alarms_state", "state"),
        Index("ix_alarms_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16))  # check, streak, stall
    check_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    severity: Mapped[Quality] = mapped_column(EnumString(Quality, 16))
    state: Mapped[AlarmState] = mapped_column(EnumString(AlarmState, 16))
    sentence: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # reminders: when the shifters were last told, how often, and when the experts were
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    events: Mapped[list[AlarmEvent]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="AlarmEvent.id"
    )


class AlarmEvent(Base):
    """One thing that happened to an alarm: opened, reopened, acknowledged, resolved, closed,
    notified, escalated; with who and when."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_alarm_id", "alarm_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[AlarmState] = mapped_column(EnumString(AlarmState, 16))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")


class RunDecision(Base):
    """One decision on a run's sign-off, kept for ever (an undo is a new decision): a shifter's
    sign-off (a Good or Bad decision per stage, with a comment), an expert's certification, or a
    run sent back to sign-off (with the reason); with who, their role, when, and what the run was
    judged under (calibration, check and code versions)."""

    __tablename__ = "run_decisions"
    __table_args__ = (Index("ix_run_decisions_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(16))  # sign_off, certify, reopen
    state: Mapped[Certification] = mapped_column(EnumString(Certification, 16))
    verdict: Mapped[Quality | None] = mapped_column(EnumString(Quality, 16), nullable=True)
    stages: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Comment(Base):
    """A comment on a run, on one of its histograms or on one PMT in it; a reply names its
    parent (threads). Stored as typed (text, never HTML): the pages escape it."""

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_run_id", "run_id"),
        Index("ix_comments_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), nullable=True
    )
    # "run", "histogram:calib/charge_pe" or "pmt:1234"
    target: Mapped[str] = mapped_column(String(80), default="run")
    user: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text)


class Visit(Base):
    """When a user last opened the dashboard, and the visit before (what is new since)."""

    __tablename__ = "visits"

    user: Mapped[str] = mapped_column(String(64), primary_key=True)
    previous_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PmtStatus(Base):
    """The status of every PMT in a run (:mod:`dqm.pmtstatus`): one byte a PMT, with the cuts and
    the version of the rules that gave it. Written with each merge of the run."""

    __tablename__ = "pmt_status"
    __table_args__ = (Index("ix_pmt_status_run_type_run_id", "run_type", "run_id"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    run_type: Mapped[str] = mapped_column(String(32))
    n_pmts: Mapped[int] = mapped_column(Integer)
    codes: Mapped[bytes] = mapped_column(Blob)  # one byte a PMT: dqm.pmtstatus.STATUS_CLASSES
    n_dead: Mapped[int] = mapped_column(Integer)
    n_hot: Mapped[int] = mapped_column(Integer)
    n_noisy: Mapped[int] = mapped_column(Integer)
    cuts: Mapped[dict[str, Any]] = mapped_column(JSON)  # dead, hot, normal band; saved or built-in
    rules_version: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PmtBlock(Base):
    """A block of :data:`dqm.pmtstatus.BLOCK_PMTS` consecutive PMTs in a run: their status codes
    and their hit rate, dark rate and charge per signal hit (float32, one array after the other).
    One PMT's history reads one small row a run (its block), whatever the database."""

    __tablename__ = "pmt_blocks"
    __table_args__ = (Index("ix_pmt_blocks_block_run_id", "block", "run_id"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("pmt_status.run_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    codes: Mapped[bytes] = mapped_column(LargeBinary)  # one byte a PMT of the block
    values: Mapped[bytes] = mapped_column(LargeBinary)  # dqm.pmtstatus.BLOCK_VALUES, float32


class PmtMask(Base):
    """A version of the PMT mask: the PMTs reconstruction leaves out, valid from a run on."""

    __tablename__ = "pmt_masks"
    __table_args__ = (Index("ix_pmt_masks_valid_from_run", "valid_from_run"),)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    valid_from_run: Mapped[int] = mapped_column(Integer)
    n_masked: Mapped[int] = mapped_column(Integer)
    pmts: Mapped[bytes] = mapped_column(Blob)  # sorted int32 ids (dqm.pmtstatus.encode_ids)
    # how it was made: {"kind": "derived", "consecutive": N, "run_type": T, "runs": [...]} or
    # {"kind": "edited", "base_version": V, "added": n, "removed": n}
    origin: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")


class KeptEvents(Base):
    """A few raw events of a file for the event display (:mod:`dqm.keptevents`): its first and
    its highest-energy physics events, each with its PMTs' charges and first-hit times and its
    reconstructed vertex and energy, compressed."""

    __tablename__ = "kept_events"
    __table_args__ = (UniqueConstraint("file_id"), Index("ix_kept_events_run_id", "run_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    n_events: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
