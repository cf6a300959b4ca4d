"""The message broker: connections and the queue of data-transfer messages.

``DQM_BROKER_URL`` selects the broker: ``filesystem://`` (the default) keeps the queue as files under
``data_dir/broker`` and needs no service; ``amqp://`` talks to RabbitMQ. Messages are JSON text
(:mod:`dqm.messages`), persistent, on a durable queue named by ``DQM_BROKER_QUEUE``.

The embedded transport is kombu's filesystem transport made crash-safe: a message taken from the
queue is moved to a spool folder and deleted only when it is acknowledged, and a consumer that starts
puts back whatever a consumer before it left unacknowledged (killed before it acknowledged), so no
message is lost. It serves one consumer (one job server): a second one, in another process, is
refused with :class:`BrokerBusy` (an exclusive lock on ``broker/control/consumer.lock``, which the
system releases when the first one's process ends, even killed); for several, use RabbitMQ.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import kombu
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from dqm.config import Settings, mask_url
from dqm.errors import DQMError
from dqm.messages import Message

#: The exchange through which data-transfer messages are routed to the queue.
EXCHANGE = kombu.Exchange("dqm", type="direct", durable=True)


class BrokerError(DQMError):
    """The broker cannot be reached or refused a message."""


class BrokerBusy(BrokerError):
    """The embedded broker already has its one consumer, in another process."""


#: The embedded brokers this process consumes from: lock file -> [its descriptor, channels].
_CONSUMING: dict[str, list[int]] = {}


def claim_embedded_consumer(control_folder: Path) -> None:
    """Make this process the one consumer of the embedded broker whose control folder this is
    (again: each claim is released once by :func:`release_embedded_consumer`).

    Raises:
        BrokerBusy: another process consumes from it (one sentence that points to RabbitMQ).
    """
    lock = str(Path(control_folder).resolve() / "consumer.lock")
    if lock in _CONSUMING:
        _CONSUMING[lock][1] += 1
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.close(fd)
        raise BrokerBusy(
            f"the embedded broker (filesystem://, under {Path(control_folder).parent}) already "
            f"serves a job server{f' ({holder})' if holder else ''} and serves only one; to run "
            "several job servers, give them all a RabbitMQ broker "
            "(DQM_BROKER_URL=amqp://user:password@host:5672//)."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
    _CONSUMING[lock] = [fd, 1]


def release_embedded_consumer(control_folder: Path) -> None:
    """Undo one :func:`claim_embedded_consumer` of this process (the last one frees the lock)."""
    lock = str(Path(control_folder).resolve() / "consumer.lock")
    held = _CONSUMING.get(lock)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _CONSUMING[lock]
        os.close(held[0])  # closing the descriptor releases the lock


# kombu leaves its channels' and transports' methods unannotated, and the configuration's
# untyped_calls_exclude does not reach calls through super(): hence the no-untyped-call ignores.


class SpoolingChannel(filesystem.Channel):
    """Filesystem channel that keeps taken messages in a spool folder until they are acknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._spooled: dict[str, Path] = {}
        self._recovered = False

    @property
    def spool_folder(self) -> Path:
        return Path(self.transport_options["spool_folder"])

    # As kombu's filesystem channel names it, which differs from its base class (payload, message).
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Wall-clock nanoseconds order messages across processes (kombu's milliseconds do not), and
        # the rename makes a message appear whole or not at all.
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        folder = Path(self.data_folder_out)
        tmp = folder / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / name)
        except OSError as exc:
            raise kombu.exceptions.ChannelError(f"cannot add a message to {folder}: {exc}") from exc

    def _recover(self) -> None:
        """Become the broker's one consumer, and put back the messages a previous consumer took
        but never acknowledged (which another consumer still running would have lost)."""
        claim_embedded_consumer(Path(self.control_folder))
        self._recovered = True
        self.spool_folder.mkdir(parents=True, exist_ok=True)
        for path in self.spool_folder.iterdir():
            if path.name.endswith(".msg"):
                os.replace(path, Path(self.data_folder_in) / path.name)

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        # (timeout: in kombu's signature; a folder is looked at once, never waited on)
        if not self._recovered:
            self._recover()
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            spooled = self.spool_folder / name
            try:
                os.replace(folder / name, spooled)
            except FileNotFoundError:
                continue  # taken in the meantime
            payload = loads(bytes_to_str(spooled.read_bytes()))
            self._spooled[payload["properties"]["delivery_tag"]] = spooled
            return payload
        raise Empty()

    def close(self) -> None:
        control = Path(self.control_folder) if self._recovered else None  # gone once closed
        super().close()  # type: ignore[no-untyped-call]
        if control is not None:
            self._recovered = False
            release_embedded_consumer(control)

    def _forget(self, delivery_tag: str) -> None:
        path = self._spooled.pop(delivery_tag, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)  # type: ignore[no-untyped-call]
        self._forget(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        # a requeued message is put back by _restore
        super().basic_reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        self._forget(delivery_tag)

    def _restore(self, message: Any) -> None:
        # Back under its original name, so that it keeps its place in the queue.
        path = self._spooled.pop(message.delivery_tag, None)
        if path is not None and path.exists():
            os.replace(path, Path(self.data_folder_in) / path.name)
        else:
            super()._restore(message)  # type: ignore[no-untyped-call]


class SpoolingTransport(filesystem.Transport):
    """The embedded broker: kombu's filesystem transport with :class:`SpoolingChannel`."""

    Channel = SpoolingChannel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)  # type: ignore[no-untyped-call]
        # kombu keeps the bindings of virtual transports in a class-wide cache; a binding cached
        # for one broker folder must not stand for another (the folder's control file is the truth).
        self.state = virtual.BrokerState()


def connection(settings: Settings) -> kombu.Connection:
    """A (not yet connected) kombu connection to the configured broker."""
    if settings.broker_url.startswith("filesystem:"):
        queues = settings.broker_dir / "queues"
        control = settings.broker_dir / "control"
        spool = settings.broker_dir / "unacked"
        for folder in (queues, control, spool):
            folder.mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(queues),
            "data_folder_out": str(queues),
            "control_folder": str(control),
            "spool_folder": str(spool),
        }
        return kombu.Connection(
            settings.broker_url,
            transport=SpoolingTransport,
            transport_options=options,
            connect_timeout=5,
        )
    return kombu.Connection(settings.broker_url, connect_timeout=5, heartbeat=0)


def transfer_queue(settings: Settings) -> kombu.Queue:
    """The durable queue of data-transfer messages (run_start, file_ready, run_end)."""
    return kombu.Queue(
        settings.broker_queue, exchange=EXCHANGE, routing_key=settings.broker_queue, durable=True
    )


def publish(settings: Settings, *messages: Message, max_retries: int = 5) -> None:
    """Publish messages on the transfer queue, persistent, retrying while the broker is away.

    Raises:
        BrokerError: the broker could not be reached after the retries (one sentence).
    """
    queue = transfer_queue(settings)
    try:
        with connection(settings) as conn:
            producer = conn.Producer()
            publish_ = conn.ensure(
                producer,
                producer.publish,
                max_retries=max_retries,
                interval_start=0.5,
                interval_step=1.0,
                interval_max=5.0,
            )
            for message in messages:
                publish_(
                    message.to_json(),
                    exchange=EXCHANGE,
                    routing_key=settings.broker_queue,
                    declare=[queue],
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode="persistent",
                    message_id=message.message_id,
                )
    except (OSError, kombu.exceptions.KombuError) as exc:
        raise BrokerError(
            f"broker {mask_url(settings.broker_url)} did not take the message: {exc}"
        ) from exc
