"""The message schema: what is valid, and one clear sentence for everything that is not."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dqm import messages
from dqm.messages import MessageError

GOOD = {
    "run_start": {
        "run_id": 10004,
        "run_type": "physics",
        "start_time": "2026-11-20T08:00:00Z",
        "detector": "CD",
    },
    "file_ready": {
        "run_id": 10004,
        "seq": 3,
        "uri": "/data/raw/10004/10004.3.root",
        "size": 5_000_000_000,
        "checksum": "0A1B2C3D",
        "n_events": 80_000,
    },
    "run_end": {
        "run_id": 10004,
        "end_time": "2026-11-20T09:00:00+01:00",
        "n_files": 45,
        "n_events": 3_600_000,
    },
}


def body(type_: str, **changes: object) -> dict[str, object]:
    content = {"schema": 1, "message_id": "msg-0000001", "type": type_, **GOOD[type_], **changes}
    return {k: v for k, v in content.items() if v is not None}


@pytest.mark.parametrize("type_", list(GOOD))
def test_valid_messages_round_trip(type_: str) -> None:
    message = messages.parse(json.dumps(body(type_)).encode())
    assert message.type == type_ and message.run_id == 10004
    assert messages.parse(message.to_json()) == message


def test_values_are_normalised() -> None:
    assert messages.parse(body("file_ready")).fields["checksum"] == "0a1b2c3d"
    assert messages.parse(body("run_start")).fields["start_time"] == dt.datetime(2026, 11, 20, 8)
    assert messages.parse(body("run_end")).fields["end_time"] == dt.datetime(
        2026, 11, 20, 8
    )  # to UTC


def test_make_builds_a_valid_message_with_a_fresh_id() -> None:
    a = messages.make("run_end", run_id=1, end_time="2026-11-20T09:00:00", n_files=1, n_events=10)
    b = messages.make("run_end", run_id=1, end_time="2026-11-20T09:00:00", n_files=1, n_events=10)
    assert a.message_id != b.message_id and a.sent_at is not None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b"x" * 70_000, "larger than"),
        (json.dumps(body("run_end", schema=2)), "schema 2 is not supported"),
        (json.dumps(body("run_end", message_id="short")), "'message_id' must be 8-64 characters"),
        (json.dumps(body("run_end", type="run_pause")), "'type' must be one of"),
        (json.dumps(body("run_end", colour="red")), "unexpected field 'colour'"),
        (json.dumps(body("run_end", n_files=None)), "lacks the field 'n_files'"),
        (json.dumps(body("file_ready", seq=-1)), "'seq' must be at least 0, got -1"),
        (json.dumps(body("file_ready", seq=True)), "'seq' must be an integer"),
        (json.dumps(body("file_ready", size="5 GB")), "'size' must be an integer"),
        (json.dumps(body("file_ready", checksum="xyz")), "adler32 checksum of 8 hex digits"),
        (json.dumps(body("file_ready", uri="")), "'uri' must be a non-empty string"),
        (json.dumps(body("run_start", run_type="cosmics")), "'run_type' must be one of physics"),
        (json.dumps(body("run_start", start_time="yesterday")), "'start_time'"),
        (
            json.dumps(body("run_start", source_z_mm="deep")),
            "'source_z_mm' must be a finite number",
        ),
        ("[" * 100_000, "larger than"),
    ],
)
def test_invalid_messages_say_why_in_one_sentence(raw: bytes | str, reason: str) -> None:
    with pytest.raises(MessageError) as info:
        messages.parse(raw)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_no_input_crashes_the_parser(raw: bytes) -> None:
    try:
        messages.parse(raw)
    except MessageError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(GOOD)), st.data())
def test_any_field_of_the_wrong_kind_is_refused(type_: str, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(list(GOOD[type_])))
    value = data.draw(json_values)
    content = body(type_)
    content[field] = value
    try:
        parsed = messages.parse(json.dumps(content))
    except MessageError:
        return
    assert parsed.type == type_  # whatever was accepted is a valid message
