"""The states of runs, files, jobs and messages: plain enums, without the database layer.

The database stores their values (:mod:`dqm.db.models`); the run-status rule
(:mod:`dqm.runstatus`), the pipeline and the dashboard use them without importing SQLAlchemy models.
"""

from __future__ import annotations

import enum

from dqm.errors import InvalidValueError

__all__ = [
    "AlarmState",
    "Certification",
    "FileState",
    "JobState",
    "MessageOutcome",
    "RunStatus",
    "parse_job_state",
    "parse_run_status",
]


class RunStatus(enum.StrEnum):
    """Status of a run as the shifter sees it (docs/architecture.md, "Run status")."""

    DATA_TAKING = "Data Taking"
    REC_RUNNING = "Rec Running"
    PARTLY_COMPLETED = "Partly Completed"
    ALL_COMPLETED = "All Completed"
    FAILED = "Failed"


class FileState(enum.StrEnum):
    """Life of a raw file, from its announcement to its processing."""

    ANNOUNCED = "announced"  # file_ready received; its job waits to be (re)submitted
    PROCESSING = "processing"  # its job is out with a worker
    DONE = "done"
    FAILED = "failed"  # its job failed after its retries, or cannot succeed
    MISSING = "missing"  # never delivered, never announced, or its job never reported: to check


class JobState(enum.StrEnum):
    """States of a job (XENONnT offline-monitoring style)."""

    TODO = "TODO"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    TOCHECK = "TOCHECK"  # data never arrived, or the job stayed silent too long


class AlarmState(enum.StrEnum):
    """Life of an alarm: opened by a check, acknowledged by a shifter, resolved by the check turning
    Good again or closed by an expert (docs/architecture.md, "Alarms")."""

    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class Certification(enum.StrEnum):
    """Where a run is in its sign-off (docs/architecture.md, "Sign-off and certification"): OPEN
    once All Completed, SIGNED_OFF by a shifter (a Good or Bad decision per stage), CERTIFIED by
    an expert; an expert may send it back to OPEN."""

    OPEN = "OPEN"
    SIGNED_OFF = "SIGNED_OFF"
    CERTIFIED = "CERTIFIED"


class MessageOutcome(enum.StrEnum):
    """What intake did with a broker message."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"  # invalid, or inconsistent with what is recorded: the error says why
    DUPLICATE = "duplicate"  # already recorded (same message id, run or file): ignored


def parse_run_status(value: str | RunStatus) -> RunStatus:
    """A run status from its display name or enum name, case-insensitively.

    ``"All Completed"``, ``"all-completed"`` and ``"ALL_COMPLETED"`` all give
    :attr:`RunStatus.ALL_COMPLETED`.

    Raises:
        InvalidValueError: not a run status (the message lists the valid ones).
    """
    if isinstance(value, RunStatus):
        return value
    key = value.strip().replace("-", " ").replace("_", " ").casefold()
    for status in RunStatus:
        if key == status.value.casefold():
            return status
    valid = ", ".join(repr(s.value) for s in RunStatus)
    raise InvalidValueError(f"{value!r} is not a run status; use one of {valid}.")


def parse_job_state(value: str | JobState) -> JobState:
    """A job state from its name, case-insensitively.

    Raises:
        InvalidValueError: not a job state.
    """
    if isinstance(value, JobState):
        return value
    for state in JobState:
        if value.strip().upper() == state.value:
            return state
    raise InvalidValueError(
        f"{value!r} is not a job state; use one of {', '.join(s.value for s in JobState)}."
    )
