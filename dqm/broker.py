"""The message broker: connections and the queue of data-transfer messages.

``DQM_BROKER_URL`` selects the broker: ``filesystem://`` (the default) keeps the queue as files under
``data_dir/broker`` and needs no service; ``amqp://`` talks to RabbitMQ. Messages are JSON text
(:mod:`dqm.messages`), persistent, on a durable queue named by ``DQM_BROKER_QUEUE``.
"""

from __future__ import annotations

from typing import Any

import kombu

from dqm.config import Settings, mask_url
from dqm.errors import DQMError
from dqm.messages import Message

#: The exchange through which data-transfer messages are routed to the queue.
EXCHANGE = kombu.Exchange("dqm", type="direct", durable=True)


class BrokerError(DQMError):
    """The broker cannot be reached or refused a message."""


def connection(settings: Settings) -> kombu.Connection:
    """A (not yet connected) kombu connection to the configured broker."""
    options: dict[str, Any] = {}
    if settings.broker_url.startswith("filesystem:"):
        queues = settings.broker_dir / "queues"
        control = settings.broker_dir / "control"
        for folder in (queues, control):
            folder.mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(queues),
            "data_folder_out": str(queues),
            "control_folder": str(control),
        }
    return kombu.Connection(settings.broker_url, transport_options=options, connect_timeout=5)


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
