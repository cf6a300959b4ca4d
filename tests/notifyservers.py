"""Real receivers of notifications for the tests: an SMTP server and an HTTP webhook receiver.

Both listen on 127.0.0.1, on a free port or on one given (so that a test can point a channel at a
port where nothing listens yet and start the receiver there later), and record what they receive::

    with smtp_server() as smtp:
        ...  # send to smtp://127.0.0.1:{smtp.port}
        smtp.messages[0].recipients, smtp.messages[0].subject, smtp.messages[0].body

    with http_receiver(status=200, delay_s=0) as hook:
        ...  # POST JSON to hook.url
        hook.received[0]["text"]
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """A TCP port of 127.0.0.1 on which nothing listens (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class ReceivedMail:
    """One e-mail as the SMTP server received it.

    Attributes:
        sender: the envelope's sender (MAIL FROM).
        recipients: the envelope's recipients (RCPT TO), in order.
        message: the message, parsed.
        login: the user it logged in as (None: no login).
    """

    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content() if isinstance(part, EmailMessage) else ""


@dataclass
class SmtpServer:
    """A running SMTP server: its port and the e-mails it received, in order."""

    port: int
    messages: list[ReceivedMail] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook: an e-mail has arrived."""
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        auth = session.auth_data if session.authenticated else None
        self.messages.append(
            ReceivedMail(
                sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                message=message,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 OK"


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client's context that trusts this certificate only (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def self_signed_certificate(directory: Path) -> Certificate | None:
    """Make a certificate with the ``openssl`` command in ``directory`` (None: no openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert = Certificate(directory / "cert.pem", directory / "key.pem")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(cert.key_file),
            "-out",
            str(cert.cert_file),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert


@contextmanager
def smtp_server(
    *,
    port: int = 0,
    users: Mapping[str, str] | None = None,
    tls: str | None = None,
    certificate: Certificate | None = None,
) -> Iterator[SmtpServer]:
    """Run an SMTP server (aiosmtpd) on 127.0.0.1 for the duration of the block.

    Args:
        port: where to listen (0: a free port).
        users: logins it accepts, user to password (None: it offers no AUTH). AUTH is offered
            without TLS too, so that plain ``smtp://user:password@`` can be tested.
        tls: None (plain), ``starttls`` (STARTTLS required) or ``implicit`` (TLS from the start,
            as smtps://); needs ``certificate``.
        certificate: the server's certificate for ``tls``.
    """
    server = SmtpServer(port or free_port())
    options: dict[str, Any] = {}
    if users is not None:
        accepted = dict(users)

        def authenticator(
            _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and accepted.get(data.login.decode()) == data.password.decode()
            )
            # handled=False: aiosmtpd answers a refusal itself (535)
            return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

        # Over implicit TLS aiosmtpd would offer no AUTH if it required TLS (it only knows of
        # STARTTLS); the connection is encrypted anyway.
        options.update(authenticator=authenticator, auth_require_tls=tls == "starttls")
    if tls is not None:
        if certificate is None:
            raise ValueError("an SMTP server with TLS needs a certificate.")
        if tls == "starttls":
            options.update(tls_context=certificate.server_context(), require_starttls=True)
        elif tls == "implicit":
            options.update(ssl_context=certificate.server_context())
        else:
            raise ValueError(f"tls must be None, 'starttls' or 'implicit', not {tls!r}.")
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        server_hostname="localhost",
        ready_timeout=10,
        **options,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class HttpReceiver:
    """A running HTTP receiver: its port and the JSON documents POSTed to it, in order.

    Attributes:
        port: where it listens.
        received: the POSTed JSON documents.
        paths: the path each was POSTed to (same order).
    """

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/dqm"


@contextmanager
def http_receiver(
    status: int = 200, delay_s: float = 0.0, *, port: int = 0
) -> Iterator[HttpReceiver]:
    """Run an HTTP server on 127.0.0.1 that records POSTed JSON, for the duration of the block.

    Args:
        status: the status it answers (recording the document whatever the status).
        delay_s: how long it waits before answering, seconds.
        port: where to listen (0: a free port).
    """
    receiver = HttpReceiver(port or free_port())
    lock = threading.Lock()
    closing = threading.Event()  # ends the delays, so that closing never waits for them

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            document = json.loads(self.rfile.read(length))
            with lock:
                receiver.received.append(document)
                receiver.paths.append(self.path)
            closing.wait(delay_s)
            body = b"ok" if 200 <= status < 300 else b"receiver failure"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up waiting (its timeout) is no error of the receiver

    httpd = Server(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
