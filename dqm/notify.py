"""Alarm notifications: the channels (e-mail, webhook) and the dispatcher that sends through them.

A :class:`Notification` says what to tell and to whom (the shifters, or the experts as well). A
channel sends one notification and raises :class:`ChannelError` when it cannot; every network
call has a timeout (10 s by default), so that a channel never hangs for ever:

- :class:`SmtpChannel` sends an e-mail (stdlib ``smtplib``). Its URL is one of::

      smtp://host[:port]                       plain SMTP, port 25 by default
      smtp://user:password@host[:port]         the same, logging in without encryption
      smtps://user:password@host[:port]        TLS from the start, port 465 by default
      smtp+starttls://user:password@host[:port]  STARTTLS, port 587 by default

  The user and password are percent-encoded in the URL (``%40`` for ``@``, ``%3A`` for ``:``);
  both are optional, but a user needs a password. The server's certificate is verified.
- :class:`WebhookChannel` POSTs JSON (stdlib ``urllib``) whose ``text`` field is what Mattermost
  and Slack incoming webhooks display.

:func:`parse_channels` builds the channels that the settings configure (``DQM_SMTP_URL``,
``DQM_WEBHOOK_URL``, ...; see :mod:`dqm.config`). The :class:`Dispatcher` sends off the caller's
thread: :meth:`Dispatcher.submit` returns at once, each channel has its own thread and bounded
queue (a slow channel does not delay the others), and a channel that is down is logged once and
retried with exponential backoff, sending what waited, in order, once it is back.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import unquote, urlsplit

# The configuration's own check of e-mail addresses: one rule for the settings and the channels.
from dqm.config import KEYS, _addresses, mask_url
from dqm.errors import ConfigError, DQMError, first_line

log = logging.getLogger("dqm.notify")

__all__ = [
    "AUDIENCES",
    "Channel",
    "ChannelError",
    "ChannelStatus",
    "Dispatcher",
    "Notification",
    "SmtpChannel",
    "WebhookChannel",
    "parse_channels",
]

#: Who a notification is for: the shifters, or the experts as well (an escalated alarm).
AUDIENCES = ("shifter", "expert")

#: SMTP URL schemes and their default ports.
SMTP_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}

#: Seconds a channel waits for the network before it gives up (each connection, each answer).
DEFAULT_TIMEOUT_S = 10.0

_SMTP_EXAMPLE = (
    "expected smtp://host:port, smtps://user:password@host:465 "
    "or smtp+starttls://user:password@host:587"
)


class ChannelError(DQMError):
    """A notification channel could not send (server unreachable, refused, timed out)."""


@dataclass(frozen=True)
class Notification:
    """What a channel tells, and to whom.

    Attributes:
        subject: one line, e.g. ``Bad: run 1234, check dead_pmts``.
        text: plain text, several lines allowed.
        severity: the alarm's severity as shown (``Bad``, ``Warning``, ...).
        alarm_id: the alarm it is about (None: not about an alarm).
        audience: ``shifter`` (the shifters) or ``expert`` (the experts as well).
        url: the dashboard page to look at (None: no link).
    """

    subject: str
    text: str
    severity: str
    alarm_id: int | None = None
    audience: str = "shifter"
    url: str | None = None

    def __post_init__(self) -> None:
        if self.audience not in AUDIENCES:
            raise ValueError(
                f"notification audience {self.audience!r} is not one of {', '.join(AUDIENCES)}."
            )


class Channel(Protocol):
    """Where notifications go: a name for the logs and a ``send`` that raises ChannelError."""

    @property
    def name(self) -> str:
        """Short name for logs and status displays, unique among the dispatcher's channels."""
        ...

    def send(self, notification: Notification) -> None:
        """Send one notification, within the channel's timeout.

        Raises:
            ChannelError: it was not sent; the message says why in one sentence.
        """
        ...


def _setting(key: str) -> str:
    """A setting as the user knows it: ``smtp_url (DQM_SMTP_URL)``."""
    return f"{key} ({KEYS[key][0]})"


def _host_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class _SmtpServer:
    """An SMTP URL, parsed."""

    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None

    @property
    def address(self) -> str:
        return _host_port(self.host, self.port)


def _parse_smtp_url(url: str) -> _SmtpServer:
    setting = _setting("smtp_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"{setting}: {mask_url(url)!r} is not an SMTP URL ({exc}); {_SMTP_EXAMPLE}."
        ) from exc
    scheme = parts.scheme.lower()
    if scheme not in SMTP_PORTS:
        raise ConfigError(
            f"{setting}: scheme {scheme or mask_url(url)!r} is not an SMTP scheme; {_SMTP_EXAMPLE}."
        )
    if not parts.hostname:
        raise ConfigError(f"{setting}: {mask_url(url)!r} names no host; {_SMTP_EXAMPLE}.")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if user and password is None:
        raise ConfigError(
            f"{setting}: {mask_url(url)!r} names a user but no password; {_SMTP_EXAMPLE}."
        )
    if not f"{user or ''}{password or ''}".isascii():
        # smtplib sends them as ASCII and fails on anything else, at every attempt.
        raise ConfigError(f"{setting}: the user and password must be ASCII characters.")
    return _SmtpServer(
        scheme=scheme,
        host=parts.hostname,
        port=port or SMTP_PORTS[scheme],
        user=user,
        password=password if user else None,
    )


def _address_list(value: str | Sequence[str], key: str) -> tuple[str, ...]:
    """Addresses given as a comma-separated text or a sequence, each checked."""
    return _addresses(value if isinstance(value, str) else list(value), _setting(key))


class SmtpChannel:
    """E-mail through an SMTP server: shifters' notifications to ``recipients``, experts' ones to
    ``recipients`` and ``expert_recipients``.

    Args:
        url: the server, ``smtp://``, ``smtps://`` or ``smtp+starttls://`` (see the module).
        sender: the From address.
        recipients: the shifters' addresses (a comma-separated text or a sequence).
        expert_recipients: the experts' addresses.
        timeout_s: seconds to wait for the server at each step.
        ssl_context: how TLS is checked (default: the system's certificate authorities).
        name: the channel's name in logs.

    Raises:
        ConfigError: the URL or an address is invalid, or there is no recipient.
    """

    def __init__(
        self,
        url: str,
        sender: str,
        recipients: str | Sequence[str],
        expert_recipients: str | Sequence[str] = (),
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "e-mail",
    ) -> None:
        self.server = _parse_smtp_url(url)
        senders = _address_list(sender, "alarm_sender")
        if len(senders) != 1:
            raise ConfigError(f"{_setting('alarm_sender')}: expected one address, got {sender!r}.")
        self.sender = senders[0]
        self.recipients = _address_list(recipients, "alarm_recipients")
        if not self.recipients:
            raise ConfigError(
                f"{_setting('alarm_recipients')}: e-mail needs at least one recipient."
            )
        self.expert_recipients = _address_list(expert_recipients, "alarm_expert_recipients")
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self.name = name

    def __repr__(self) -> str:
        return (
            f"SmtpChannel({self.server.scheme}://{self.server.address}, to {len(self.recipients)})"
        )

    def recipients_for(self, notification: Notification) -> list[str]:
        """Who gets the e-mail: the shifters, and for the experts' audience the experts too."""
        everyone = list(self.recipients)
        if notification.audience == "expert":
            everyone += [a for a in self.expert_recipients if a not in everyone]
        return everyone

    def message(self, notification: Notification) -> EmailMessage:
        """The e-mail for a notification (without its envelope)."""
        msg = EmailMessage()
        msg["Subject"] = f"[DQM {notification.severity}] {notification.subject}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients_for(notification))
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Message-ID"] = email.utils.make_msgid(domain=self.sender.rpartition("@")[2])
        # RFC 3834: no out-of-office answers to the DQM.
        msg["Auto-Submitted"] = "auto-generated"
        if notification.alarm_id is not None:
            msg["X-DQM-Alarm"] = str(notification.alarm_id)
        body = notification.text.rstrip("\n")
        if notification.url:
            body += f"\n\n{notification.url}"
        msg.set_content(body + "\n")
        return msg

    def send(self, notification: Notification) -> None:
        """Send the notification as one e-mail to all its recipients.

        Raises:
            ChannelError: the server could not be reached, refused the login or the message, or
                did not answer within the timeout.
        """
        server = self.server
        msg = self.message(notification)
        to = self.recipients_for(notification)
        context = self.ssl_context or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if server.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(
                    server.host, server.port, timeout=self.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(server.host, server.port, timeout=self.timeout_s)
            with smtp:
                if server.scheme == "smtp+starttls":
                    smtp.starttls(context=context)
                if server.user is not None and server.password is not None:
                    smtp.login(server.user, server.password)
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=to)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(
                f"the SMTP server {server.address} refused the login of {server.user!r}: "
                f"{_smtp_reply(exc.smtp_code, exc.smtp_error)}."
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(
                f"the SMTP server {server.address} refused every recipient "
                f"({', '.join(exc.recipients)})."
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(
                f"the SMTP server {server.address} refused the e-mail: "
                f"{_smtp_reply(exc.smtp_code, exc.smtp_error)}."
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(
                f"cannot send e-mail through {server.address}: {_reason(exc)}."
            ) from exc
        if refused:
            # Sent to the others: sending again would repeat it to them.
            log.warning(
                "notification channel %s: the SMTP server refused %s",
                self.name,
                ", ".join(f"{a} ({_smtp_reply(*reply)})" for a, reply in refused.items()),
            )


def _reason(exc: BaseException) -> str:
    """An error's first line, named by its type, to end a sentence."""
    return first_line(exc, with_type=True).rstrip(".")


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(text.split())}".strip()


def _check_webhook_url(url: str, key: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{_setting(key)}: {mask_url(url)!r} is not a URL ({exc}).") from exc
    if parts.scheme.lower() not in {"http", "https"}:
        raise ConfigError(
            f"{_setting(key)}: a webhook URL starts with http:// or https://, "
            f"not {parts.scheme + '://' if parts.scheme else repr(mask_url(url))}."
        )
    if not parts.hostname:
        raise ConfigError(f"{_setting(key)}: {mask_url(url)!r} names no host.")
    if parts.username is not None:
        # urllib would take them for part of the host name and fail at every attempt.
        raise ConfigError(
            f"{_setting(key)}: a user or password in a webhook URL is not supported; "
            "put the webhook's token in its path."
        )
    return url


def _webhook_where(url: str) -> str:
    """A webhook's address for messages: scheme and host only (its path is often a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{_host_port(parts.hostname or '', parts.port)}"


class WebhookChannel:
    """HTTP POST of a JSON document, as Mattermost and Slack incoming webhooks take it.

    The document is ``{"text", "severity", "alarm_id", "audience", "url"}``; ``text`` (what the
    chat shows) is the subject, the text and the link, on separate lines. The experts' notifications
    go to ``expert_url`` when it is given, else to ``url``.

    Args:
        url: where the shifters' notifications are POSTed (http:// or https://).
        expert_url: where the experts' notifications are POSTed (None: ``url``).
        timeout_s: seconds to wait for the connection and for the answer.
        name: the channel's name in logs.

    Raises:
        ConfigError: a URL is not http:// or https:// or names no host.
    """

    def __init__(
        self,
        url: str,
        expert_url: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        name: str = "webhook",
    ) -> None:
        self.url = _check_webhook_url(url, "webhook_url")
        self.expert_url = (
            _check_webhook_url(expert_url, "expert_webhook_url") if expert_url else None
        )
        self.timeout_s = timeout_s
        self.name = name

    def __repr__(self) -> str:
        return f"WebhookChannel({_webhook_where(self.url)})"

    def url_for(self, notification: Notification) -> str:
        """Where the notification is POSTed."""
        if notification.audience == "expert" and self.expert_url:
            return self.expert_url
        return self.url

    @staticmethod
    def payload(notification: Notification) -> dict[str, object]:
        """The JSON document POSTed for a notification."""
        lines = [notification.subject, notification.text.rstrip("\n")]
        if notification.url:
            lines.append(notification.url)
        return {
            "text": "\n".join(lines),
            "severity": notification.severity,
            "alarm_id": notification.alarm_id,
            "audience": notification.audience,
            "url": notification.url,
        }

    def send(self, notification: Notification) -> None:
        """POST the notification.

        Raises:
            ChannelError: the receiver could not be reached, did not answer within the timeout or
                answered with a status other than 2xx.
        """
        url = self.url_for(notification)
        where = _webhook_where(url)
        body = json.dumps(self.payload(notification), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "dqm-notify"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            with exc:
                detail = " ".join(exc.read(200).decode("utf-8", errors="replace").split())
            raise ChannelError(
                f"the webhook at {where} answered HTTP {exc.code} {exc.reason}"
                f"{': ' + detail if detail else ''}."
            ) from exc
        except urllib.error.URLError as exc:
            reason = exc.reason if isinstance(exc.reason, BaseException) else exc
            raise ChannelError(f"cannot reach the webhook at {where}: {_reason(reason)}.") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ChannelError(f"cannot reach the webhook at {where}: {_reason(exc)}.") from exc


def parse_channels(
    smtp_url: str | None = None,
    sender: str | None = None,
    recipients: str | Sequence[str] = (),
    expert_recipients: str | Sequence[str] = (),
    webhook_url: str | None = None,
    expert_webhook_url: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Channel]:
    """The channels the settings configure: e-mail if ``smtp_url``, a webhook if ``webhook_url``.

    Args:
        smtp_url: the SMTP server (None or empty: no e-mail).
        sender: the From address of e-mails.
        recipients: the shifters' addresses (a comma-separated text or a sequence).
        expert_recipients: the experts' addresses.
        webhook_url: where notifications are POSTed (None or empty: no webhook).
        expert_webhook_url: where the experts' notifications are POSTed (None: ``webhook_url``).
        timeout_s: each channel's network timeout, seconds.

    Raises:
        ConfigError: a value is invalid; the sentence names the setting.
    """
    channels: list[Channel] = []
    if smtp_url and smtp_url.strip():
        if not sender or not sender.strip():
            raise ConfigError(f"{_setting('alarm_sender')}: e-mail needs a From address.")
        if not _address_list(recipients, "alarm_recipients"):
            raise ConfigError(
                f"{_setting('alarm_recipients')}: e-mail needs at least one recipient "
                "(smtp_url is set)."
            )
        channels.append(
            SmtpChannel(smtp_url, sender, recipients, expert_recipients, timeout_s=timeout_s)
        )
    if webhook_url and webhook_url.strip():
        channels.append(
            WebhookChannel(webhook_url, expert_webhook_url or None, timeout_s=timeout_s)
        )
    elif expert_webhook_url and expert_webhook_url.strip():
        raise ConfigError(
            f"{_setting('expert_webhook_url')} needs {_setting('webhook_url')} as well, where the "
            "shifters' notifications go."
        )
    return channels


@dataclass(frozen=True)
class ChannelStatus:
    """A channel as a status display shows it.

    Attributes:
        name: the channel's name.
        is_down: its last attempt failed and it is being retried.
        sent: notifications sent.
        failed_attempts: attempts that failed (each retry counts).
        waiting: notifications waiting in its queue (not counting the one being tried).
        dropped: notifications dropped because its queue was full or the dispatcher stopped.
        last_error: why its last failed attempt failed (None: it never failed).
    """

    name: str
    is_down: bool
    sent: int
    failed_attempts: int
    waiting: int
    dropped: int
    last_error: str | None


class _ChannelWorker:
    """One channel's queue and thread."""

    def __init__(
        self,
        channel: Channel,
        dispatcher: Dispatcher,
        queue_size: int,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.dispatcher = dispatcher
        # None is the stop signal.
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=queue_size)
        self.lock = threading.Lock()
        self.is_down = False
        self.down_since = 0.0  # time.monotonic() of the first failure, while down
        self.sent = 0
        self.failed_attempts = 0
        self.dropped = 0
        self.dropped_at_stop = 0
        self.last_error: str | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"dqm-notify-{self.name}", daemon=True
        )

    def put(self, notification: Notification) -> None:
        """Queue a notification without waiting; a full queue loses its oldest."""
        while not self.dispatcher.stopping.is_set():
            try:
                self.queue.put_nowait(notification)
                return
            except queue.Full:
                try:
                    oldest = self.queue.get_nowait()
                except queue.Empty:
                    continue  # taken by the thread in the meantime: room again
                if oldest is None:  # the stop signal, put while we were here: it stays
                    self.signal_stop()
                    return
                with self.lock:
                    self.dropped += 1
                log.warning(
                    "notification channel %s: %d notifications wait, the oldest is dropped: %s",
                    self.name,
                    self.queue.maxsize,
                    oldest.subject,
                )

    def signal_stop(self) -> None:
        """Empty the queue (counting what it held as dropped) and put the stop signal in it."""
        while True:
            dropped = 0
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                dropped += item is not None
            with self.lock:
                self.dropped_at_stop += dropped
            try:
                self.queue.put_nowait(None)
                return
            except queue.Full:
                continue  # refilled by a submit that came in with the stop

    def _run(self) -> None:
        stopping = self.dispatcher.stopping
        while True:
            notification = self.queue.get()
            if notification is None:
                return
            if stopping.is_set():
                with self.lock:
                    self.dropped_at_stop += 1
                return
            if not self._deliver(notification, stopping):
                with self.lock:
                    self.dropped_at_stop += 1
                return

    def _deliver(self, notification: Notification, stopping: threading.Event) -> bool:
        """Send, retrying with backoff until it works; False if stopped before it did."""
        delay = self.dispatcher.first_backoff_s
        while True:
            try:
                self.channel.send(notification)
            except Exception as exc:  # noqa: BLE001 - a channel's bug must not end its thread
                reason = _reason(exc)
                with self.lock:
                    self.failed_attempts += 1
                    self.last_error = reason
                if stopping.is_set():
                    return False
                if not self.is_down:
                    self.is_down = True
                    self.down_since = time.monotonic()
                    log.warning(
                        "notification channel %s is down: %s; retrying with backoff",
                        self.name,
                        reason,
                    )
                else:
                    log.debug(
                        "notification channel %s: still down (%s); next try in %g s",
                        self.name,
                        reason,
                        delay,
                    )
                if stopping.wait(delay):
                    return False
                delay = min(delay * 2, self.dispatcher.max_backoff_s)
                continue
            with self.lock:
                self.sent += 1
            if self.is_down:
                self.is_down = False
                log.info(
                    "notification channel %s is back after %.0f s down; sending the %d waiting",
                    self.name,
                    time.monotonic() - self.down_since,
                    self.queue.qsize(),
                )
            self.dispatcher.delivered(notification, self.name)
            return True

    def status(self) -> ChannelStatus:
        with self.lock:
            return ChannelStatus(
                name=self.name,
                is_down=self.is_down,
                sent=self.sent,
                failed_attempts=self.failed_attempts,
                waiting=self.queue.qsize(),
                dropped=self.dropped + self.dropped_at_stop,
                last_error=self.last_error,
            )


class Dispatcher:
    """Sends notifications through channels, each in a thread of its own, never blocking the caller.

    The threads start with the dispatcher and end with :meth:`stop`. Each channel has a bounded
    queue: when it is full (a channel down for long), the oldest notification is dropped and
    logged. A failed send is logged once (WARNING), then retried, the same notification, after
    ``first_backoff_s``, twice that, and so on up to ``max_backoff_s``, without a log line per
    retry; the channel coming back is logged once (INFO), and what waited is sent in order.

    Args:
        channels: where notifications go (their names must differ).
        on_sent: called as ``on_sent(notification, channel_name)`` after each successful send, in
            the channel's thread (e.g. to record the delivery); its errors are logged and ignored.
        queue_size: the most notifications waiting per channel.
        first_backoff_s: the wait after the first failed attempt, seconds.
        max_backoff_s: the longest wait between attempts, seconds.

    Raises:
        ValueError: two channels have the same name, or a size or wait is not positive.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        on_sent: Callable[[Notification, str], None] | None = None,
        queue_size: int = 1000,
        first_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        names = [channel.name for channel in channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two notification channels are named {duplicates[0]!r}.")
        if queue_size < 1 or first_backoff_s <= 0 or max_backoff_s < first_backoff_s:
            raise ValueError(
                "queue_size must be at least 1 and 0 < first_backoff_s <= max_backoff_s, got "
                f"{queue_size}, {first_backoff_s} and {max_backoff_s}."
            )
        self.on_sent = on_sent
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stopping = threading.Event()
        self._workers = [_ChannelWorker(channel, self, queue_size) for channel in channels]
        for worker in self._workers:
            worker.thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def channel_names(self) -> list[str]:
        """The channels' names, in the order given."""
        return [worker.name for worker in self._workers]

    @property
    def sent(self) -> int:
        """Notifications sent, all channels together (one notification on two channels: 2)."""
        return sum(worker.sent for worker in self._workers)

    @property
    def failed_attempts(self) -> int:
        """Attempts that failed, all channels together (each retry counts)."""
        return sum(worker.failed_attempts for worker in self._workers)

    @property
    def dropped(self) -> int:
        """Notifications dropped (a full queue, or still waiting at :meth:`stop`)."""
        return sum(worker.dropped + worker.dropped_at_stop for worker in self._workers)

    def is_down(self, channel_name: str) -> bool:
        """Whether the channel's last attempt failed (it is being retried).

        Raises:
            KeyError: no channel has that name.
        """
        for worker in self._workers:
            if worker.name == channel_name:
                return worker.is_down
        raise KeyError(channel_name)

    def status(self) -> list[ChannelStatus]:
        """Each channel's state and counters, for a status display."""
        return [worker.status() for worker in self._workers]

    def submit(self, notification: Notification) -> None:
        """Queue a notification for every channel and return at once (never waits on the network).

        After :meth:`stop`, the notification is dropped with a log line.
        """
        if self.stopping.is_set():
            log.warning("notification dispatcher is stopped: not sent: %s", notification.subject)
            return
        for worker in self._workers:
            worker.put(notification)

    def delivered(self, notification: Notification, channel_name: str) -> None:
        """Called by a channel's thread after a successful send: calls ``on_sent``."""
        if self.on_sent is None:
            return
        try:
            self.on_sent(notification, channel_name)
        except Exception as exc:  # noqa: BLE001 - the caller's callback must not end the thread
            log.error(
                "notification channel %s: recording the delivery failed: %s",
                channel_name,
                first_line(exc, with_type=True),
            )

    def stop(self, timeout: float = 5.0) -> None:
        """End the threads; notifications not yet sent are dropped, and their number logged.

        A send under way is given until ``timeout`` (seconds, all channels together) to finish;
        a thread still sending then is left to end by itself (it is a daemon thread).
        """
        if self.stopping.is_set():
            return
        self.stopping.set()
        for worker in self._workers:
            worker.signal_stop()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            if worker.thread.is_alive():
                log.warning(
                    "notification channel %s: still sending after %g s; left to finish alone",
                    worker.name,
                    timeout,
                )
        dropped = {worker.name: worker.dropped_at_stop for worker in self._workers}
        total = sum(dropped.values())
        if total:
            log.warning(
                "notification dispatcher stopped: %d notification(s) not sent were dropped (%s)",
                total,
                ", ".join(f"{name}: {n}" for name, n in dropped.items() if n),
            )
        else:
            log.debug("notification dispatcher stopped with nothing waiting")
