"""The broker consumer of the job server: messages of data transfer, each recorded through intake.

Each message is recorded, with its effects, in a transaction of its own (:mod:`pipeline.intake`) and
acknowledged only after that transaction has committed, so that a crash in between leaves it on the
broker, which delivers it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import kombu
import kombu.exceptions
from sqlalchemy.orm import Session

from dqm import broker
from dqm.config import Settings, mask_url
from dqm.states import MessageOutcome
from pipeline import intake, jobs
from pipeline.failpoints import failpoint

log = logging.getLogger("dqm.jobserver")


class BrokerUnavailable(Exception):
    """The broker cannot be reached, or the connection to it broke."""


class _StopIntake(Exception):
    """Raised inside a message callback to stop consuming (the database is away)."""


def _is_broker_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError | kombu.exceptions.KombuError | ConnectionError) or (
        type(exc).__module__.startswith("amqp")
    )


class MessageConsumer:
    """Takes the messages waiting on the broker and records each one.

    Args:
        settings: the broker URL and queue.
        context: what intake passes on to the jobs it creates.
        transaction: opens a session in a transaction (the job server's way to the database).
        on_recorded: told the outcome of each message recorded and acknowledged (the metrics).
    """

    def __init__(
        self,
        settings: Settings,
        context: jobs.Context,
        transaction: Callable[[], AbstractContextManager[Session]],
        on_recorded: Callable[[MessageOutcome], None] | None = None,
    ) -> None:
        self.settings = settings
        self.context = context
        self.transaction = transaction
        self.on_recorded = on_recorded
        self._connection: kombu.Connection | None = None
        self._consumer: kombu.Consumer | None = None
        self._recorded = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def take(self, seconds: float, should_stop: Callable[[], bool]) -> int:
        """Record the messages that arrive within ``seconds``; the number recorded.

        Raises:
            BrokerUnavailable: the broker cannot be reached (the connection is closed; messages
                not acknowledged go back to the queue).
            Exception: the database error that stopped intake (the connection is closed too).
        """
        self._recorded = 0
        try:
            if self._connection is None:
                self._open()
            assert self._connection is not None
            deadline = time.monotonic() + max(seconds, 0.05)
            while time.monotonic() < deadline and not should_stop():
                try:
                    self._connection.drain_events(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
        except _StopIntake as stop:
            self.close()
            assert stop.__cause__ is not None
            raise stop.__cause__ from None
        except Exception as exc:
            if not _is_broker_error(exc):
                raise
            self.close()
            raise BrokerUnavailable(str(exc)) from exc
        return self._recorded

    def _open(self) -> None:
        connection = broker.connection(self.settings)
        try:
            connection.ensure_connection(max_retries=1, timeout=5)
            channel = connection.channel()
            channel.basic_qos(0, 10, False)
            consumer = kombu.Consumer(
                channel, queues=[broker.transfer_queue(self.settings)], on_message=self._on_message
            )
            consumer.consume()
        except BaseException:
            connection.collect()  # drop it without talking to a broker that is not there
            raise
        self._connection, self._consumer = connection, consumer
        log.info(
            "listening on %s, queue %s",
            mask_url(self.settings.broker_url),
            self.settings.broker_queue,
        )

    def close(self) -> None:
        """Close the connection; messages taken but not acknowledged go back to the queue."""
        connection, self._connection, self._consumer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - a broken connection cannot be closed politely
                connection.collect()

    def _on_message(self, message: kombu.Message) -> None:
        try:
            with self.transaction() as session:
                outcome = intake.record(session, message.body, self.context)
        except Exception as exc:
            raise _StopIntake() from exc
        failpoint("intake:after-commit")
        message.ack()
        self._recorded += 1
        if self.on_recorded is not None:
            self.on_recorded(outcome.outcome)
        run = f" run {outcome.run_id}" if outcome.run_id is not None else ""
        if outcome.outcome == MessageOutcome.ACCEPTED:
            log.info("message %s%s accepted", outcome.type, run)
        else:
            log.warning(
                "message %s%s %s: %s",
                outcome.type or "?",
                run,
                outcome.outcome.value,
                outcome.reason,
            )
