"""Messages received from the broker, whatever their outcome."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.db.models import Message
from dqm.states import MessageOutcome

#: Run attributes that ``update_run`` may change.


def run_end_received_at(session: Session, *, run_id: int) -> dt.datetime | None:
    """When the accepted run_end of a run was received."""
    return session.scalar(
        select(Message.received_at).where(
            Message.run_id == run_id,
            Message.type == "run_end",
            Message.outcome == MessageOutcome.ACCEPTED,
        )
    )


def message_seen(session: Session, *, message_id: str) -> bool:
    """Whether a message with this id has been recorded already."""
    return session.scalar(select(Message.id).where(Message.message_id == message_id)) is not None


def record_message(
    session: Session,
    *,
    payload: str,
    outcome: MessageOutcome,
    message_id: str | None = None,
    type: str | None = None,
    run_id: int | None = None,
    error: str | None = None,
) -> Message:
    """Record a received message (accepted or rejected) exactly as it arrived."""
    message = Message(
        message_id=message_id,
        type=type,
        run_id=run_id,
        payload=payload,
        outcome=outcome,
        error=error,
    )
    session.add(message)
    session.flush()
    return message


def messages(
    session: Session, *, outcome: MessageOutcome | None = None, limit: int | None = 100
) -> list[Message]:
    """Received messages, newest first."""
    query = select(Message).order_by(Message.received_at.desc(), Message.id.desc())
    if outcome is not None:
        query = query.where(Message.outcome == outcome)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
