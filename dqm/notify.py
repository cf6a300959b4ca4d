"""Where alarms are sent: e-mail through SMTP and a webhook that POSTs JSON, off the caller's thread.

- :class:`SmtpChannel` sends an e-mail (``smtp://host:port``, ``smtps://user:password@host:465``
  for TLS from the start, ``smtp+starttls://user:password@host:587`` for STARTTLS; the user and
  password percent-encoded). Shifters' notices go to the recipients, escalations to the experts
  as well.
- :class:`WebhookChannel` POSTs ``{"text": ..., "severity": ..., "alarm_id": ..., "audience": ...,
  "url": ...}`` (the ``text`` field is what Mattermost and Slack show); escalations go to the
  expert URL when there is one.
- :class:`Dispatcher` hands each notification to every channel through a queue and a thread of the
  channel's own: ``submit`` never blocks, a slow channel never delays another. A channel that fails
  is logged once ("is down"), retried with a doubling backoff (capped), and logged once more when
  it works again; what waited is then sent, in order.
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

from dqm.errors import ConfigError, DQMError

__all__ = [
    "Channel",
    "ChannelError",
    "Dispatcher",
    "Notification",
    "SmtpChannel",
    "WebhookChannel",
    "parse_channels",
]

log = logging.getLogger("dqm.notify")

#: Seconds a channel waits for its server before giving up (a send never hangs).
TIMEOUT_S = 10.0
_SMTP_SCHEMES = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}


class ChannelError(DQMError):
    """A notification could not be sent: the sentence says where and why."""


@dataclass(frozen=True)
class Notification:
    """What the channels say about an alarm.

    Attributes:
        subject: one line.
        text: the body (several lines allowed).
        severity: Bad, Warning...
        alarm_id: the alarm's id, if it is about one.
        audience: ``shifter`` or ``expert`` (an escalation).
        url: the dashboard page to open.
    """

    subject: str
    text: str
    severity: str = "Bad"
    alarm_id: int | None = None
    audience: str = "shifter"
    url: str | None = None


class Channel(Protocol):
    """A way of sending notifications."""

    name: str

    def send(self, notification: Notification) -> None:
        """Send it, or raise :class:`ChannelError`."""


class SmtpChannel:
    """E-mail through an SMTP server."""

    def __init__(
        self,
        url: str,
        sender: str,
        recipients: Sequence[str],
        expert_recipients: Sequence[str] = (),
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SMTP_SCHEMES or not parts.hostname:
            raise ConfigError(
                f"smtp_url: {url!r} is not an SMTP URL (smtp://host:port, smtps://user:pw@host, "
                "smtp+starttls://user:pw@host)."
            )
        if not recipients:
            raise ConfigError("alarm_recipients: e-mail needs at least one recipient.")
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or _SMTP_SCHEMES[parts.scheme]
        except ValueError:
            raise ConfigError(f"smtp_url: {url!r} has a bad port.") from None
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.recipients = tuple(recipients)
        self.expert_recipients = tuple(expert_recipients)
        self.timeout_s = timeout_s
        self.name = f"e-mail via {self.host}:{self.port}"

    def send(self, notification: Notification) -> None:
        to = list(self.recipients)
        if notification.audience == "expert":
            to += [r for r in self.expert_recipients if r not in to]
        message = EmailMessage()
        message["Subject"] = f"[DQM {notification.severity}] {notification.subject}"
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        body = notification.text + (f"\n\n{notification.url}" if notification.url else "")
        message.set_content(body)
        try:
            if self.scheme == "smtps":
                context = ssl.create_default_context()
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(message, from_addr=self.sender, to_addrs=to)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(
                f"{self.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None


class WebhookChannel:
    """JSON POSTed to a URL (Mattermost, Slack, any HTTP receiver)."""

    def __init__(
        self, url: str, expert_url: str | None = None, timeout_s: float = TIMEOUT_S
    ) -> None:
        for key, value in (("webhook_url", url), ("expert_webhook_url", expert_url)):
            if value is not None:
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ConfigError(f"{key}: {value!r} is not an http:// or https:// URL.")
        self.url = url
        self.expert_url = expert_url
        self.timeout_s = timeout_s
        self.name = f"webhook {urlsplit(url).hostname}:{urlsplit(url).port or ''}".rstrip(":")

    def send(self, notification: Notification) -> None:
        url = self.expert_url if notification.audience == "expert" and self.expert_url else self.url
        text = f"**{notification.subject}**\n{notification.text}"
        if notification.url:
            text += f"\n{notification.url}"
        body = json.dumps(
            {
                "text": text,
                "severity": notification.severity,
                "alarm_id": notification.alarm_id,
                "audience": notification.audience,
                "url": notification.url,
            }
        ).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            raise ChannelError(f"{self.name}: the receiver answered HTTP {exc.code}.") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ChannelError(f"{self.name}: {type(exc).__name__}: {reason}") from None
        if not 200 <= status < 300:
            raise ChannelError(f"{self.name}: the receiver answered HTTP {status}.")


def parse_channels(
    *,
    smtp_url: str | None,
    sender: str,
    recipients: Sequence[str],
    expert_recipients: Sequence[str] = (),
    webhook_url: str | None = None,
    expert_webhook_url: str | None = None,
) -> list[Channel]:
    """The channels configured (none: alarms are only shown on the dashboard and the command line).

    Raises:
        ConfigError: a URL or address that cannot be used, naming the setting.
    """
    channels: list[Channel] = []
    if smtp_url:
        channels.append(SmtpChannel(smtp_url, sender, recipients, expert_recipients))
    if webhook_url:
        channels.append(WebhookChannel(webhook_url, expert_webhook_url))
    elif expert_webhook_url:
        raise ConfigError("expert_webhook_url: give webhook_url too (the shifters' webhook).")
    return channels


class _Worker:
    """One channel's queue and thread."""

    def __init__(
        self,
        channel: Channel,
        stop: threading.Event,
        *,
        max_queue: int,
        first_backoff_s: float,
        max_backoff_s: float,
        on_sent: Callable[[Notification, str], None] | None,
    ) -> None:
        self.channel = channel
        self.queue: queue.Queue[Notification] = queue.Queue(max_queue)
        self.stop = stop
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_sent = on_sent
        self.is_down = False
        self.sent = 0
        self.failed_attempts = 0
        self.dropped = 0
        self.thread = threading.Thread(
            target=self._run, name=f"dqm-notify {channel.name}", daemon=True
        )

    def put(self, notification: Notification) -> None:
        while True:
            try:
                self.queue.put_nowait(notification)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                    log.warning(
                        "notification channel %s: queue full, the oldest notice dropped",
                        self.channel.name,
                    )
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                notification = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(notification)

    def _deliver(self, notification: Notification) -> None:
        backoff = self.first_backoff_s
        while not self.stop.is_set():
            try:
                self.channel.send(notification)
            except Exception as exc:  # noqa: BLE001 - a channel's failure never ends the thread
                self.failed_attempts += 1
                if not self.is_down:
                    log.warning(
                        "notification channel %s is down: %s; retrying with backoff",
                        self.channel.name,
                        exc,
                    )
                    self.is_down = True
                else:
                    log.debug("notification channel %s still down: %s", self.channel.name, exc)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if self.is_down:
                log.info("notification channel %s is back", self.channel.name)
                self.is_down = False
            self.sent += 1
            if self.on_sent is not None:
                try:
                    self.on_sent(notification, self.channel.name)
                except Exception:
                    log.exception("after sending to %s", self.channel.name)
            return


class Dispatcher:
    """Sends notifications to channels from threads of their own (see the module's docstring).

    Args:
        channels: where to send.
        max_queue: notices waiting per channel (beyond, the oldest is dropped and logged).
        first_backoff_s, max_backoff_s: the retry delay of a channel that is down, doubling from
            the first to the largest.
        on_sent: called with each notice and channel name once sent.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        max_queue: int = 1000,
        first_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        on_sent: Callable[[Notification, str], None] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self._workers = [
            _Worker(
                channel,
                self._stop,
                max_queue=max_queue,
                first_backoff_s=first_backoff_s,
                max_backoff_s=max_backoff_s,
                on_sent=on_sent,
            )
            for channel in channels
        ]
        for worker in self._workers:
            worker.thread.start()

    @property
    def channels(self) -> list[str]:
        return [w.channel.name for w in self._workers]

    @property
    def sent(self) -> int:
        return sum(w.sent for w in self._workers)

    @property
    def failed_attempts(self) -> int:
        return sum(w.failed_attempts for w in self._workers)

    def down(self) -> list[str]:
        """The channels that are down now."""
        return [w.channel.name for w in self._workers if w.is_down]

    def submit(self, notification: Notification) -> None:
        """Queue a notice for every channel; returns at once."""
        for worker in self._workers:
            worker.put(notification)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads (what still waits is dropped, and counted in the log)."""
        self._stop.set()
        waiting = 0
        for worker in self._workers:
            worker.thread.join(timeout)
            waiting += worker.queue.qsize()
        if waiting:
            log.warning("notifications: %d notices not sent at shutdown", waiting)
