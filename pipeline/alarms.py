"""The alarm watcher: a thread beside the job server's loop that opens and resolves the stall
alarms, and hands the due notifications (first notices, reminders, escalations) to the channels.

It never blocks the loop: it has its own database connections, and sending happens in the
dispatcher's own threads (:mod:`dqm.notify`), where a channel that is down is logged once and
retried with backoff. A database that goes away is tried again at the next poll; it is reported
once, by the job server's own outage line when the watcher runs inside a job server.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from dqm.alarms import stall_key
from dqm.checks.quality import Quality
from dqm.config import AlarmSettings
from dqm.db import queries
from dqm.db.models import Alarm
from dqm.errors import first_line
from dqm.notify import Channel, Dispatcher, Notification
from dqm.states import AlarmState
from dqm.times import format_time, utcnow

log = logging.getLogger("dqm.alarms")

__all__ = ["AlarmWatcher", "notification_for"]


def notification_for(alarm: Alarm, audience: str, dashboard_url: str) -> Notification:
    """What the channels say about an alarm."""
    url = f"{dashboard_url.rstrip('/')}/?page=alarms&alarm={alarm.id}"
    if alarm.run_id is not None and alarm.kind != "stall":
        url = f"{dashboard_url.rstrip('/')}/?page=run&run={alarm.run_id}&tab=checks"
    what = f"run {alarm.run_id}" if alarm.run_id is not None else "the DQM"
    title = (
        f"{alarm.severity}: {what}, check {alarm.check_name}"
        if alarm.check_name
        else f"{alarm.severity}: {what}, processing stalls"
    )
    again = ""
    if audience == "expert":
        again = "Not acknowledged since it opened: sent to the experts as well.\n"
    elif alarm.notifications:
        again = f"Reminder {alarm.notifications}: nobody has acknowledged it yet.\n"
    text = (
        f"{alarm.sentence}\n{again}Alarm {alarm.id}, open since {format_time(alarm.opened_at)} "
        f"UTC. Acknowledge it on the dashboard or with: dqm alarms ack {alarm.id} --comment '…'"
    )
    return Notification(
        subject=title,
        text=text,
        severity=str(alarm.severity),
        alarm_id=alarm.id,
        audience=audience,
        url=url,
    )


class AlarmWatcher:
    """Stall alarms and notifications, every ``poll_s`` seconds, in a thread of its own.

    Args:
        settings: when to remind, escalate and call a run stalled; the dashboard's address.
        transaction: opens a unit of work on the database.
        channels: where notices go (none: nothing is sent, the alarms are only shown on the
            dashboard and by ``dqm alarms``).
        poll_s: how often to look.
        database_errors: the errors that mean the database is away (the job server's).
        on_database_error: called with such an error instead of logging it (the job server
            reports the outage once, whichever of its threads met it).
        on_database_ok: called after each look that reached the database.
    """

    def __init__(
        self,
        settings: AlarmSettings,
        transaction: Callable[[], AbstractContextManager[Session]],
        channels: Sequence[Channel] = (),
        poll_s: float = 2.0,
        database_errors: tuple[type[BaseException], ...] = (),
        on_database_error: Callable[[BaseException], None] | None = None,
        on_database_ok: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.transaction = transaction
        self.channels = list(channels)
        self.poll_s = poll_s
        self.dispatcher: Dispatcher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.database_errors = database_errors
        self.on_database_error = on_database_error
        self.on_database_ok = on_database_ok

    def start(self) -> None:
        """Start looking (and the channels' threads), until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        if self.channels:
            self.dispatcher = Dispatcher(self.channels)
        self._thread = threading.Thread(target=self._loop, name="dqm-alarms", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop looking and sending (notices still queued are dropped, and counted in the log)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout)
            self.dispatcher = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                if self.on_database_ok is not None:
                    self.on_database_ok()
                if self._failing:
                    log.warning("alarm watcher: works again")
                    self._failing = False
            except self.database_errors as exc:
                if self.on_database_error is not None:
                    self.on_database_error(exc)
                elif not self._failing:
                    log.error(
                        "alarm watcher: %s; trying again every %.0f s",
                        first_line(exc, with_type=True),
                        self.poll_s,
                    )
                    self._failing = True
            except Exception as exc:  # noqa: BLE001 - a database that went away, whatever its error
                if not self._failing:
                    log.error(
                        "alarm watcher: %s; trying again every %.0f s",
                        first_line(exc, with_type=True),
                        self.poll_s,
                    )
                    self._failing = True
            self._stop.wait(self.poll_s)

    def step(self, now: dt.datetime | None = None) -> int:
        """One look: stall alarms, then the due notifications. Returns how many were sent."""
        now = now or utcnow()
        with self.transaction() as session:
            self._stalls(session, now)
        if self.dispatcher is None:
            return 0
        sent = 0
        with self.transaction() as session:
            due = queries.due_notifications(
                session,
                now=now,
                remind_after_s=self.settings.remind_after_s,
                escalate_after_s=self.settings.escalate_after_s,
            )
            for alarm, audience in due:
                self.dispatcher.submit(
                    notification_for(alarm, audience, self.settings.dashboard_url)
                )
                queries.mark_notified(session, alarm_id=alarm.id, audience=audience, now=now)
                sent += 1
        return sent

    def _stalls(self, session: Session, now: dt.datetime) -> None:
        stalled = {
            run.run_id: run
            for run in queries.stalled_runs(
                session, now=now, stall_after_s=self.settings.stall_after_s
            )
        }
        for run in stalled.values():
            minutes = (now - run.since).total_seconds() / 60
            queries.raise_alarm(
                session,
                key=stall_key(run.run_id),
                kind="stall",
                severity=Quality.BAD,
                sentence=(
                    f"run {run.run_id} is taking data and {run.waiting_files} of its files wait, "
                    f"but none was done for {minutes:.0f} min (limit "
                    f"{self.settings.stall_after_s / 60:g} min): is the job server working?"
                ),
                run_id=run.run_id,
                run_type=run.run_type,
                now=now,
            )
        for alarm in queries.list_alarms(
            session, states=[AlarmState.OPEN, AlarmState.ACKNOWLEDGED], limit=None
        ):
            if alarm.kind == "stall" and alarm.run_id not in stalled:
                queries.resolve_alarm(
                    session,
                    key=alarm.key,
                    sentence=f"run {alarm.run_id}: processing goes on again.",
                    now=now,
                )
