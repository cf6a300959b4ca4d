"""Message intake: every message from data transfer recorded in the database, exactly once.

A message is validated against the shared schema (:mod:`dqm.messages`) and recorded with its
outcome — accepted, rejected (with the reason) or duplicate — together with its effects (the run,
the file, the jobs it calls for and the run's new status) in one transaction. It is acknowledged
only after that transaction has committed: a crash before leaves it on the broker, which delivers
it again, and the second delivery is recognised as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from dqm import messages, rawformat
from dqm.db import queries
from dqm.db.models import Run
from dqm.db.queries import Retry, transition_job
from dqm.errors import DQMError
from dqm.states import FileState, JobState, MessageOutcome
from dqm.times import utcnow
from pipeline import jobs

log = logging.getLogger("dqm.intake")

#: At most this much of a message body is kept in the database (a message is a few hundred bytes;
#: anything larger is garbage, kept in part as evidence).
STORED_BODY_BYTES = 1 << 20

#: Who changed a run's tags when run_start carried them (in the ``changes`` table).
RUN_START_USER = "run_start"


class Rejected(DQMError):
    """A valid message that contradicts what is recorded (unknown run, path outside the raw roots)."""


class Duplicate(DQMError):
    """A message whose effect is already recorded."""


@dataclass(frozen=True)
class Outcome:
    """What intake did with a message."""

    outcome: MessageOutcome
    type: str | None
    run_id: int | None
    reason: str | None = None


def _body_text(body: bytes | str) -> tuple[str, str | None]:
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    note = None
    if len(raw) > STORED_BODY_BYTES:
        note = f"body of {len(raw)} bytes, first {STORED_BODY_BYTES} kept"
        raw = raw[:STORED_BODY_BYTES]
    return raw.decode("utf-8", "backslashreplace"), note


def _guess_type_and_run(text: str) -> tuple[str | None, int | None]:
    """The type and run of an invalid message, where they can be told (for the record only)."""
    if len(text) > messages.MAX_MESSAGE_BYTES:
        return None, None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(decoded, dict):
        return None, None
    type_ = decoded.get("type") if decoded.get("type") in messages.SCHEMAS else None
    run_id = decoded.get("run_id")
    valid_run = isinstance(run_id, int) and not isinstance(run_id, bool) and 0 <= run_id < 2**31
    return type_, run_id if valid_run else None


def record(session: Session, body: bytes | str, context: jobs.Context) -> Outcome:
    """Validate a message body and record it with its effects (in the caller's transaction)."""
    text, note = _body_text(body)
    try:
        message = messages.parse(body)
    except messages.MessageError as exc:
        reason = str(exc) + (f" ({note})" if note else "")
        type_, run_id = _guess_type_and_run(text)
        queries.record_message(
            session,
            payload=text,
            outcome=MessageOutcome.REJECTED,
            type=type_,
            run_id=run_id,
            error=reason,
        )
        return Outcome(MessageOutcome.REJECTED, type_, run_id, reason)
    if queries.message_seen(session, message_id=message.message_id):
        reason = f"duplicate of message {message.message_id}, already recorded"
        queries.record_message(
            session,
            payload=text,
            outcome=MessageOutcome.DUPLICATE,
            type=message.type,
            run_id=message.run_id,
            error=reason,
        )
        return Outcome(MessageOutcome.DUPLICATE, message.type, message.run_id, reason)
    try:
        with session.begin_nested():
            _apply(session, message, context)
    except (Rejected, Duplicate) as exc:
        outcome = MessageOutcome.REJECTED if isinstance(exc, Rejected) else MessageOutcome.DUPLICATE
        # The id is kept only in the payload: a corrected message may be sent again with the same id.
        queries.record_message(
            session,
            payload=text,
            outcome=outcome,
            type=message.type,
            run_id=message.run_id,
            error=str(exc),
        )
        return Outcome(outcome, message.type, message.run_id, str(exc))
    queries.record_message(
        session,
        payload=text,
        outcome=MessageOutcome.ACCEPTED,
        message_id=message.message_id,
        type=message.type,
        run_id=message.run_id,
    )
    return Outcome(MessageOutcome.ACCEPTED, message.type, message.run_id)


def _apply(session: Session, message: messages.Message, context: jobs.Context) -> None:
    fields = message.fields
    run_id = message.run_id
    run = queries.find_run(session, run_id=run_id)
    if message.type == "run_start":
        if run is not None:
            raise Duplicate(f"run {run_id} was already started.")
        queries.add_run(
            session,
            run_id=run_id,
            run_type=fields["run_type"],
            detector=fields["detector"],
            start_time=fields["start_time"],
            comment=fields.get("comment"),
            source=fields.get("source"),
            source_z_mm=fields.get("source_z_mm"),
            trigger_rate_hz=fields.get("trigger_rate_hz"),
            software_version=fields.get("software_version"),
        )
        if fields.get("tags"):
            queries.change_run_tags(session, run_id=run_id, add=fields["tags"], user=RUN_START_USER)
        return
    if run is None:
        raise Rejected(f"run {run_id} is unknown: no run_start was received for it.")
    if message.type == "file_ready":
        _file_ready(session, run, message, context)
    else:
        _run_end(session, run, message, context)
    queries.refresh_run_status(session, run_id=run_id)


def _file_ready(
    session: Session, run: Run, message: messages.Message, context: jobs.Context
) -> None:
    fields = message.fields
    existing = queries.find_file(session, run_id=run.run_id, seq=fields["seq"])
    if existing is not None and existing.uri:
        raise Duplicate(f"run {run.run_id} already has file {fields['seq']} ({existing.uri}).")
    try:
        rawformat.resolve_raw_uri(fields["uri"], context.settings.raw_roots)
    except DQMError as exc:
        raise Rejected(str(exc)) from None
    if existing is not None:  # a file given up as never announced arrives after all
        existing.uri, existing.size, existing.checksum = (
            fields["uri"],
            fields["size"],
            fields["checksum"],
        )
        existing.n_events, existing.state, existing.arrived_at = (
            fields["n_events"],
            FileState.ANNOUNCED,
            utcnow(),
        )
        for job in queries.list_jobs(
            session, run_id=run.run_id, kind=jobs.PROCESS_FILE.name, limit=None
        ):
            if job.file_id == existing.id and job.state == JobState.TOCHECK:
                transition_job(
                    session,
                    job=job,
                    state=JobState.TODO,
                    reason="its file arrived",
                    retry=Retry.FRESH,
                )
        return
    file = queries.add_file(
        session,
        run_id=run.run_id,
        seq=fields["seq"],
        uri=fields["uri"],
        size=fields["size"],
        checksum=fields["checksum"],
        n_events=fields["n_events"],
    )
    jobs.create_jobs(session, "file_announced", run, file, context)


def _run_end(session: Session, run: Run, message: messages.Message, context: jobs.Context) -> None:
    if run.end_time is not None:
        raise Duplicate(f"run {run.run_id} has already ended.")
    end_time: dt.datetime = message.fields["end_time"]
    if end_time < run.start_time:
        raise Rejected(
            f"run {run.run_id}: end time {end_time:%Y-%m-%d %H:%M:%S} is before its start time "
            f"{run.start_time:%Y-%m-%d %H:%M:%S}."
        )
    run.end_time = end_time
    run.n_files = message.fields["n_files"]
    run.n_events = message.fields["n_events"]
    jobs.create_jobs(session, "run_ended", run, None, context)
