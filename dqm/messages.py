"""The messages between data transfer and the DQM: one validated definition, shared by the DAQ
simulator (which sends them), ``dqm notify`` and the job server (which receives them).

Every message is a JSON object with ``schema`` (the version, now 1), a unique ``message_id``, its
``type`` and the fields of that type:

=============  ================================================================================
type           fields (``*`` optional)
=============  ================================================================================
run_start      run_id, run_type, start_time, detector, source*, source_z_mm*, trigger_rate_hz*,
               software_version*, comment*, tags* (a list of words such as ``messy``)
file_ready     run_id, seq, uri, size, checksum (adler32, 8 hex digits), n_events
run_end        run_id, end_time, n_files, n_events
=============  ================================================================================

Times are ISO 8601 in UTC. :func:`parse` validates strictly and raises :class:`MessageError` with
one sentence naming the first problem; it never raises anything else, whatever the input.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dqm.errors import DQMError
from dqm.runs import check_tags
from dqm.times import parse_time, utcnow

#: Version of the message schema this code writes and reads.
SCHEMA_VERSION = 1

#: Run types the DQM knows.
RUN_TYPES = ("physics", "calibration", "laser", "random")

#: Largest accepted message, in bytes: a message is a few hundred bytes; anything near this is not one.
MAX_MESSAGE_BYTES = 64 * 1024

_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{7,63}$")
_CHECKSUM = re.compile(r"^[0-9a-f]{8}$")


class MessageError(DQMError):
    """A message does not follow the schema; the text says which field and why."""


@dataclass(frozen=True)
class Field:
    """One field of a message type: a checker that returns the normalised value or raises."""

    check: Callable[[str, Any], Any]
    required: bool = True


def _integer(minimum: int = 0) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"field {name!r} must be an integer, got {value!r}.")
        if value < minimum:
            raise MessageError(f"field {name!r} must be at least {minimum}, got {value}.")
        return value

    return check


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MessageError(f"field {name!r} must be a finite number, got {value!r}.")
    return float(value)


def _text(max_length: int = 255) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise MessageError(f"field {name!r} must be a non-empty string, got {value!r}.")
        if len(value) > max_length:
            raise MessageError(f"field {name!r} is longer than {max_length} characters.")
        return value

    return check


def _time(name: str, value: Any) -> dt.datetime:
    """An ISO 8601 time string, parsed once here into a naive UTC datetime."""
    if not isinstance(value, str):
        raise MessageError(f"field {name!r} must be an ISO 8601 time string, got {value!r}.")
    try:
        return parse_time(value, what=name)
    except DQMError as exc:
        raise MessageError(f"field {name!r}: {exc}") from None


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _run_type(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in RUN_TYPES:
        raise MessageError(f"field {name!r} must be one of {', '.join(RUN_TYPES)}, got {value!r}.")
    return value


def _tags(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 32:
        raise MessageError(f"field {name!r} must be a list of at most 32 tags, got {value!r}.")
    try:
        return check_tags(value)
    except DQMError as exc:
        raise MessageError(f"field {name!r}: {exc}") from None


def _checksum(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _CHECKSUM.match(value.lower()):
        raise MessageError(
            f"field {name!r} must be an adler32 checksum of 8 hex digits, got {value!r}."
        )
    return value.lower()


#: The fields of each message type (besides schema, message_id, type and sent_at).
SCHEMAS: dict[str, dict[str, Field]] = {
    "run_start": {
        "run_id": Field(_integer()),
        "run_type": Field(_run_type),
        "start_time": Field(_time),
        "detector": Field(_text(32)),
        "source": Field(_text(32), required=False),
        "source_z_mm": Field(_number, required=False),
        "trigger_rate_hz": Field(_number, required=False),
        "software_version": Field(_text(64), required=False),
        "comment": Field(_text(1000), required=False),
        "tags": Field(_tags, required=False),
    },
    "file_ready": {
        "run_id": Field(_integer()),
        "seq": Field(_integer()),
        "uri": Field(_text(1024)),
        "size": Field(_integer()),
        "checksum": Field(_checksum),
        "n_events": Field(_integer()),
    },
    "run_end": {
        "run_id": Field(_integer()),
        "end_time": Field(_time),
        "n_files": Field(_integer()),
        "n_events": Field(_integer()),
    },
}


@dataclass(frozen=True)
class Message:
    """A validated message.

    Attributes:
        type: ``run_start``, ``file_ready`` or ``run_end``.
        message_id: unique id given by the sender.
        fields: the type's fields, validated and normalised (times as naive UTC datetimes).
        sent_at: when the sender sent it (UTC), if it said.
    """

    type: str
    message_id: str
    fields: Mapping[str, Any]
    sent_at: dt.datetime | None = None

    @property
    def run_id(self) -> int:
        return int(self.fields["run_id"])

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "message_id": self.message_id,
            "type": self.type,
        }
        if self.sent_at is not None:
            body["sent_at"] = _json_value(self.sent_at)
        body.update({name: _json_value(value) for name, value in self.fields.items()})
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def new_message_id() -> str:
    """A fresh, unique message id."""
    return uuid.uuid4().hex


def make(type_: str, *, message_id: str | None = None, **fields: Any) -> Message:
    """Build and validate a message of type ``type_``.

    Datetimes may be given as :class:`datetime.datetime`. Optional fields given as None are left out.

    Raises:
        MessageError: a field is missing, unexpected or invalid.
    """
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "message_id": message_id or new_message_id(),
        "type": type_,
        "sent_at": utcnow().isoformat(),
    }
    for name, value in fields.items():
        if value is None:
            continue
        body[name] = _json_value(value)
    return parse_dict(body)


def parse(body: bytes | str | Mapping[str, Any]) -> Message:
    """Validate a received message body.

    Raises:
        MessageError: whatever is wrong (not UTF-8, not JSON, not an object, wrong schema version,
            missing, unexpected or invalid field), as one sentence.
    """
    if isinstance(body, Mapping):
        return parse_dict(body)
    if isinstance(body, bytes):
        if len(body) > MAX_MESSAGE_BYTES:
            raise MessageError(f"message of {len(body)} bytes is larger than {MAX_MESSAGE_BYTES}.")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("message is not UTF-8 text.") from None
    if not isinstance(body, str):
        raise MessageError(f"message body of type {type(body).__name__} is not JSON text.")
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(body)} characters is larger than {MAX_MESSAGE_BYTES}.")
    try:
        decoded = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MessageError(f"message is not valid JSON: {getattr(exc, 'msg', exc)}.") from None
    if not isinstance(decoded, dict):
        raise MessageError(f"message is JSON but not an object (got {type(decoded).__name__}).")
    return parse_dict(decoded)


def parse_dict(body: Mapping[str, Any]) -> Message:
    """Validate a message already decoded from JSON (see :func:`parse`)."""
    schema = body.get("schema")
    if schema != SCHEMA_VERSION:
        raise MessageError(
            f"message schema {schema!r} is not supported; this DQM reads schema {SCHEMA_VERSION}."
        )
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not _MESSAGE_ID.match(message_id):
        raise MessageError(
            f"field 'message_id' must be 8-64 characters of letters, digits, '_', '.', ':' or '-', "
            f"got {message_id!r}."
        )
    type_ = body.get("type")
    if type_ not in SCHEMAS:
        raise MessageError(f"field 'type' must be one of {', '.join(SCHEMAS)}, got {type_!r}.")
    spec = SCHEMAS[type_]
    unexpected = sorted(set(body) - set(spec) - {"schema", "message_id", "type", "sent_at"})
    if unexpected:
        raise MessageError(f"{type_} message has the unexpected field {unexpected[0]!r}.")
    sent_at = _time("sent_at", body["sent_at"]) if "sent_at" in body else None
    fields: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in body:
            if field.required:
                raise MessageError(f"{type_} message lacks the field {name!r}.")
            continue
        fields[name] = field.check(name, body[name])
    return Message(type=type_, message_id=message_id, fields=fields, sent_at=sent_at)
