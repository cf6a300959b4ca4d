"""Alarm notifications against real receivers: an SMTP server (aiosmtpd) and an HTTP server, both
on 127.0.0.1, started by the tests; a channel that is down is a port where nothing listens.

E-mail is tested in plain SMTP, with a login (AUTH offered without TLS), and, where the
``openssl`` command can make a self-signed certificate, with STARTTLS and with TLS from the start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from notifyservers import free_port, http_receiver, self_signed_certificate, smtp_server

from dqm.errors import ConfigError, DQMError
from dqm.notify import (
    ChannelError,
    Dispatcher,
    Notification,
    SmtpChannel,
    WebhookChannel,
    parse_channels,
)

SHIFTERS = ["shift.leader@juno.example", "shifter@juno.example"]
EXPERTS = ["pmt.expert@juno.example"]


def notification(n: int = 1, audience: str = "shifter") -> Notification:
    return Notification(
        subject=f"Bad: run {1000 + n}, check dead_pmts",
        text=f"312 dead PMTs in run {1000 + n} (limit 200).\nAlarm {n}, open since 2026-11-20.",
        severity="Bad",
        alarm_id=n,
        audience=audience,
        url=f"http://dqm.juno.example/?page=run&run={1000 + n}&tab=checks",
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def records(caplog: pytest.LogCaptureFixture, level: int, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dqm.notify" and r.levelno == level and words in r.getMessage()
    ]


# E-mail


def test_email_to_shifters_then_to_experts_as_well() -> None:
    with smtp_server() as smtp:
        channel = SmtpChannel(smtp.url, "dqm@juno.example", ",".join(SHIFTERS), EXPERTS)
        channel.send(notification(1))
        channel.send(notification(2, audience="expert"))

    shifters, experts = smtp.messages
    assert shifters.sender == "dqm@juno.example"
    assert shifters.recipients == SHIFTERS
    assert shifters.subject == "[DQM Bad] Bad: run 1001, check dead_pmts"
    assert shifters.message["From"] == "dqm@juno.example"
    assert shifters.message["X-DQM-Alarm"] == "1"
    assert shifters.message["Auto-Submitted"] == "auto-generated"
    assert shifters.body.splitlines() == [
        "312 dead PMTs in run 1001 (limit 200).",
        "Alarm 1, open since 2026-11-20.",
        "",
        "http://dqm.juno.example/?page=run&run=1001&tab=checks",
    ]
    assert shifters.login is None
    assert experts.recipients == SHIFTERS + EXPERTS
    assert experts.message["To"] == ", ".join(SHIFTERS + EXPERTS)


def test_email_login_with_percent_encoded_password() -> None:
    with smtp_server(users={"dqm": "p@ss:w/rd"}) as smtp:
        url = f"smtp://dqm:p%40ss%3Aw%2Frd@127.0.0.1:{smtp.port}"
        SmtpChannel(url, "dqm@juno.example", SHIFTERS).send(notification())
        wrong = f"smtp://dqm:guess@127.0.0.1:{smtp.port}"
        with pytest.raises(ChannelError, match=r"refused the login of 'dqm': 535"):
            SmtpChannel(wrong, "dqm@juno.example", SHIFTERS).send(notification())
    assert [m.login for m in smtp.messages] == ["dqm"]


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_email_over_tls(tmp_path: Path, scheme: str) -> None:
    certificate = self_signed_certificate(tmp_path)
    if certificate is None:
        pytest.skip("the openssl command, which makes the test certificate, is not installed")
    tls = "starttls" if scheme == "smtp+starttls" else "implicit"
    with smtp_server(users={"dqm": "secret"}, tls=tls, certificate=certificate) as smtp:
        url = f"{scheme}://dqm:secret@127.0.0.1:{smtp.port}"
        trusting = SmtpChannel(url, "dqm@juno.example", SHIFTERS, timeout_s=5)
        trusting.ssl_context = certificate.client_context()
        trusting.send(notification())
        # The system's authorities do not know the test certificate: refused, not sent.
        with pytest.raises(ChannelError, match="certificate verify failed"):
            SmtpChannel(url, "dqm@juno.example", SHIFTERS, timeout_s=5).send(notification())
    assert [(m.login, m.recipients) for m in smtp.messages] == [("dqm", SHIFTERS)]


def test_email_server_unreachable() -> None:
    port = free_port()
    channel = SmtpChannel(f"smtp://127.0.0.1:{port}", "dqm@juno.example", SHIFTERS, timeout_s=2)
    with pytest.raises(ChannelError, match=rf"cannot send e-mail through 127\.0\.0\.1:{port}: "):
        channel.send(notification())


def test_smtp_url_forms() -> None:
    def server(url: str) -> tuple[str, str, int, str | None, str | None]:
        s = SmtpChannel(url, "dqm@juno.example", SHIFTERS).server
        return s.scheme, s.host, s.port, s.user, s.password

    assert server("smtp://mail.juno.example") == ("smtp", "mail.juno.example", 25, None, None)
    assert server("smtps://dqm%40juno:p%2Fw@mail.juno.example") == (
        "smtps",
        "mail.juno.example",
        465,
        "dqm@juno",
        "p/w",
    )
    assert server("SMTP+STARTTLS://u:@[::1]:2525")[:4] == ("smtp+starttls", "::1", 2525, "u")


# Webhook


def test_webhook_posts_json_and_routes_the_experts() -> None:
    with http_receiver() as shifters, http_receiver() as experts:
        WebhookChannel(shifters.url).send(notification(1, audience="expert"))
        channel = WebhookChannel(shifters.url, experts.url)
        channel.send(notification(2))
        channel.send(notification(3, audience="expert"))

    first, second = shifters.received
    assert first == {
        "text": "Bad: run 1001, check dead_pmts\n312 dead PMTs in run 1001 (limit 200).\n"
        "Alarm 1, open since 2026-11-20.\n"
        "http://dqm.juno.example/?page=run&run=1001&tab=checks",
        "severity": "Bad",
        "alarm_id": 1,
        "audience": "expert",
        "url": "http://dqm.juno.example/?page=run&run=1001&tab=checks",
    }
    assert second["alarm_id"] == 2 and second["audience"] == "shifter"
    assert [d["alarm_id"] for d in experts.received] == [3]
    assert shifters.paths == ["/hooks/dqm", "/hooks/dqm"]


def test_webhook_without_link() -> None:
    with http_receiver() as hook:
        WebhookChannel(hook.url).send(
            Notification(subject="Stall", text="No file done.", severity="Warning", alarm_id=None)
        )
    assert hook.received[0]["text"] == "Stall\nNo file done."
    assert hook.received[0]["url"] is None and hook.received[0]["alarm_id"] is None


def test_webhook_errors_are_channel_errors() -> None:
    with (
        http_receiver(status=500) as failing,
        pytest.raises(ChannelError, match=r"answered HTTP 500 .*: receiver failure\.$"),
    ):
        WebhookChannel(failing.url).send(notification())
    assert len(failing.received) == 1
    port = free_port()
    with pytest.raises(
        ChannelError, match=rf"cannot reach the webhook at http://127\.0\.0\.1:{port}"
    ):
        WebhookChannel(f"http://127.0.0.1:{port}/secret-token").send(notification())
    with (
        http_receiver(delay_s=5) as slow,
        pytest.raises(ChannelError, match="timed out") as raised,
    ):
        WebhookChannel(slow.url, timeout_s=0.2).send(notification())
    assert "/hooks" not in str(raised.value)  # the path of a webhook is often its secret
    assert isinstance(raised.value, DQMError)


# The dispatcher


def test_channel_down_is_logged_once_and_catches_up_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dqm.notify")
    port = free_port()  # nothing listens there yet
    delivered: list[tuple[int | None, str]] = []
    channel = WebhookChannel(f"http://127.0.0.1:{port}/hooks/dqm", timeout_s=2)
    with Dispatcher(
        [channel],
        on_sent=lambda n, name: delivered.append((n.alarm_id, name)),
        first_backoff_s=0.01,
        max_backoff_s=0.05,
    ) as dispatcher:
        dispatcher.submit(notification(1))
        wait_for(lambda: dispatcher.failed_attempts >= 4)  # several retries
        assert dispatcher.is_down("webhook")
        dispatcher.submit(notification(2))  # returns at once, the channel being down
        dispatcher.submit(notification(3))
        (down,) = dispatcher.status()
        assert down.is_down and down.sent == 0 and down.waiting == 2
        assert down.last_error and f"127.0.0.1:{port}" in down.last_error

        with http_receiver(port=port) as hook:
            wait_for(lambda: len(hook.received) == 3)
            wait_for(lambda: dispatcher.sent == 3)
        assert [d["alarm_id"] for d in hook.received] == [1, 2, 3]
        assert delivered == [(1, "webhook"), (2, "webhook"), (3, "webhook")]
        assert not dispatcher.is_down("webhook")

    (down_line,) = records(caplog, logging.WARNING, "is down")
    assert down_line.startswith(
        f"notification channel webhook is down: cannot reach the webhook at "
        f"http://127.0.0.1:{port}: ConnectionRefusedError: "
    )
    assert down_line.endswith("; retrying with backoff")
    assert len(records(caplog, logging.INFO, "notification channel webhook is back")) == 1
    assert len(records(caplog, logging.DEBUG, "still down")) >= 3
    assert not records(caplog, logging.WARNING, "dropped")


def test_submit_does_not_wait_for_a_slow_channel() -> None:
    with smtp_server() as smtp, http_receiver(delay_s=5) as slow:
        email = SmtpChannel(smtp.url, "dqm@juno.example", SHIFTERS)
        dispatcher = Dispatcher([WebhookChannel(slow.url), email])
        dispatcher.submit(notification(1))
        # Returned while the webhook still holds the request: submit did not wait for it ...
        wait_for(lambda: len(slow.received) == 1)
        assert dispatcher.status()[0].sent == 0
        # ... and the e-mail did not wait for the webhook either.
        wait_for(lambda: len(smtp.messages) == 1)
        assert dispatcher.status()[0].sent == 0
        dispatcher.stop(timeout=0.1)  # the webhook's send is left to end by itself
    assert smtp.messages[0].message["X-DQM-Alarm"] == "1"


def test_full_queue_drops_the_oldest_and_stop_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dqm.notify")
    channel = WebhookChannel(f"http://127.0.0.1:{free_port()}/hooks/dqm", timeout_s=2)
    # A backoff of a minute: only stop's event can end the wait within the test.
    dispatcher = Dispatcher([channel], queue_size=2, first_backoff_s=60, max_backoff_s=60)
    dispatcher.submit(notification(1))
    wait_for(lambda: dispatcher.failed_attempts == 1)  # notification 1 is being retried
    for n in (2, 3, 4):
        dispatcher.submit(notification(n))
    assert records(caplog, logging.WARNING, "the oldest is dropped") == [
        (
            "notification channel webhook: 2 notifications wait, the oldest is dropped: "
            "Bad: run 1002, check dead_pmts"
        )
    ]
    dispatcher.stop(timeout=5)
    assert records(caplog, logging.WARNING, "dispatcher stopped") == [
        "notification dispatcher stopped: 3 notification(s) not sent were dropped (webhook: 3)"
    ]
    assert dispatcher.dropped == 4 and dispatcher.sent == 0
    dispatcher.submit(notification(5))  # after stop: dropped, with a line
    assert records(caplog, logging.WARNING, "dispatcher is stopped")


def test_a_failing_on_sent_is_logged_and_sending_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def on_sent(n: Notification, channel_name: str) -> None:
        raise RuntimeError("database is locked")

    with http_receiver() as hook, Dispatcher([WebhookChannel(hook.url)], on_sent=on_sent) as d:
        d.submit(notification(1))
        d.submit(notification(2))
        wait_for(lambda: d.sent == 2)
    line = (
        "notification channel webhook: recording the delivery failed: "
        "RuntimeError: database is locked"
    )
    assert records(caplog, logging.ERROR, "recording the delivery failed") == [line, line]


def test_dispatcher_refuses_two_channels_of_one_name() -> None:
    with pytest.raises(ValueError, match="two notification channels are named 'webhook'"):
        Dispatcher([WebhookChannel("http://a.example/"), WebhookChannel("http://b.example/")])


def test_notification_audience() -> None:
    with pytest.raises(ValueError, match="audience 'experts' is not one of shifter, expert"):
        notification(audience="experts")


# The settings


def test_parse_channels_builds_what_is_configured() -> None:
    assert parse_channels() == []
    assert parse_channels(smtp_url="", webhook_url="  ", recipients=SHIFTERS) == []
    email, hook = parse_channels(
        smtp_url="smtp+starttls://dqm:pw@mail.juno.example",
        sender="dqm@juno.example",
        recipients=SHIFTERS,
        expert_recipients="pmt.expert@juno.example, daq.expert@juno.example",
        webhook_url="https://chat.juno.example/hooks/abc",
        expert_webhook_url="https://chat.juno.example/hooks/experts",
    )
    assert isinstance(email, SmtpChannel) and isinstance(hook, WebhookChannel)
    assert email.server.port == 587
    assert email.expert_recipients == ("pmt.expert@juno.example", "daq.expert@juno.example")
    assert hook.expert_url == "https://chat.juno.example/hooks/experts"
    (only_hook,) = parse_channels(webhook_url="http://127.0.0.1:8065/hooks/x")
    assert only_hook.name == "webhook"


GOOD = {
    "smtp_url": "smtp://mail.juno.example:25",
    "sender": "dqm@juno.example",
    "recipients": SHIFTERS,
    "expert_recipients": EXPERTS,
    "webhook_url": "https://chat.juno.example/hooks/abc",
    "expert_webhook_url": None,
}


@pytest.mark.parametrize(
    ("changes", "setting", "words"),
    [
        ({"smtp_url": "imap://mail.juno.example"}, "smtp_url (DQM_SMTP_URL)", "not an SMTP scheme"),
        ({"smtp_url": "mail.juno.example"}, "smtp_url (DQM_SMTP_URL)", "not an SMTP scheme"),
        ({"smtp_url": "smtp://"}, "smtp_url (DQM_SMTP_URL)", "names no host"),
        ({"smtp_url": "smtps://dqm@mail.juno.example"}, "smtp_url (DQM_SMTP_URL)", "no password"),
        ({"smtp_url": "smtp://u:secret@mail:25x"}, "smtp_url (DQM_SMTP_URL)", "not an SMTP URL"),
        ({"smtp_url": "smtp://dqm:w%C3%B6rd@mail"}, "smtp_url (DQM_SMTP_URL)", "ASCII"),
        ({"sender": "dqm"}, "alarm_sender (DQM_ALARM_SENDER)", "'dqm' is not an e-mail address"),
        ({"sender": None}, "alarm_sender (DQM_ALARM_SENDER)", "needs a From address"),
        (
            {"recipients": "shifter@juno.example; x@y"},
            "alarm_recipients (DQM_ALARM_RECIPIENTS)",
            "is not an e-mail address",
        ),
        ({"recipients": []}, "alarm_recipients (DQM_ALARM_RECIPIENTS)", "at least one recipient"),
        (
            {"expert_recipients": ["pmt.expert@juno.example", "the experts"]},
            "alarm_expert_recipients (DQM_ALARM_EXPERT_RECIPIENTS)",
            "'the experts' is not an e-mail address",
        ),
        ({"webhook_url": "ftp://chat.juno.example/x"}, "webhook_url (DQM_WEBHOOK_URL)", "ftp://"),
        ({"webhook_url": "chat.juno.example/hooks"}, "webhook_url (DQM_WEBHOOK_URL)", "http://"),
        ({"webhook_url": "https:///hooks/abc"}, "webhook_url (DQM_WEBHOOK_URL)", "names no host"),
        (
            {"webhook_url": "https://bot:secret@chat.juno.example/hooks/x"},
            "webhook_url (DQM_WEBHOOK_URL)",
            "user or password",
        ),
        (
            {"expert_webhook_url": "mailto:experts@juno.example"},
            "expert_webhook_url (DQM_EXPERT_WEBHOOK_URL)",
            "http:// or https://",
        ),
        (
            {"webhook_url": None, "expert_webhook_url": "https://chat.juno.example/hooks/e"},
            "expert_webhook_url (DQM_EXPERT_WEBHOOK_URL)",
            "needs webhook_url",
        ),
    ],
)
def test_parse_channels_names_the_bad_setting(
    changes: dict[str, object], setting: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_channels(**{**GOOD, **changes})  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith(setting) and words in message
    assert message.endswith(".") and "\n" not in message
    assert "secret" not in message
