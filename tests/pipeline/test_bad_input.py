"""A corpus of bad input: every case gets a clear recorded reason, the consumer keeps running, and a
good run sent in between is processed as if nothing happened."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import make_settings, publish_raw, run_server, session, simulate
from services import foreign_root_dir

from dqm import broker, messages
from dqm.db import queries
from dqm.db.models import FileState, JobState, MessageOutcome, RunStatus


def good(type_: str, **fields: object) -> dict[str, object]:
    return messages.make(type_, **fields).to_dict()


def bad_messages(raw_dir: Path) -> list[tuple[str, bytes | str, str]]:
    """(case, body, words the recorded reason must contain)."""
    start = good(
        "run_start", run_id=900, run_type="physics", start_time="2026-11-01T08:00:00", detector="CD"
    )
    ready = {
        "schema": 1,
        "message_id": "fr-900-0000",
        "type": "file_ready",
        "run_id": 900,
        "seq": 0,
        "uri": str(raw_dir / "900" / "900.0.root"),
        "size": 10,
        "checksum": "00000001",
        "n_events": 5,
    }
    end = good("run_end", run_id=900, end_time="2026-11-01T09:00:00", n_files=1, n_events=5)

    def mutated(base: dict[str, object], **changes: object) -> str:
        content = {**base, **changes}
        content["message_id"] = (
            f"mut-{abs(hash(json.dumps(changes, sort_keys=True, default=str))):016x}"
        )
        return json.dumps({k: v for k, v in content.items() if v is not None})

    return [
        ("not JSON", b"{this is not json", "not valid JSON"),
        ("not UTF-8", b"\xff\xfe\x00garbage", "not UTF-8"),
        ("empty body", b"", "not valid JSON"),
        ("JSON array", "[1, 2, 3]", "not an object"),
        ("JSON string", '"run_start"', "not an object"),
        ("no schema", mutated(start, schema=None), "schema None is not supported"),
        ("unknown schema", mutated(start, schema=7), "schema 7 is not supported"),
        ("no message id", json.dumps({**start, "message_id": None}), "'message_id'"),
        ("unknown type", mutated(start, type="run_pause"), "'type' must be one of"),
        ("missing field", mutated(start, detector=None), "lacks the field 'detector'"),
        ("mistyped run id", mutated(start, run_id="900"), "'run_id' must be an integer"),
        ("negative run id", mutated(start, run_id=-1), "'run_id' must be at least 0"),
        ("bool as integer", mutated(ready, seq=True), "'seq' must be an integer"),
        (
            "unknown run type",
            mutated(start, run_id=901, run_type="cosmic"),
            "'run_type' must be one of",
        ),
        ("bad start time", mutated(start, run_id=902, start_time="soon"), "'start_time'"),
        ("bad checksum", mutated(ready, checksum="zzzz"), "adler32"),
        ("negative size", mutated(ready, size=-5), "'size' must be at least 0"),
        ("unexpected field", mutated(ready, priority="high"), "unexpected field 'priority'"),
        ("file of an unknown run", mutated(ready, run_id=777), "run 777 is unknown"),
        (
            "uri outside the raw roots",
            mutated(ready, seq=1, uri="/etc/passwd"),
            "outside the allowed raw roots",
        ),
        (
            "uri with ..",
            mutated(ready, seq=2, uri=str(raw_dir / ".." / ".." / "etc" / "passwd")),
            "contains '..'",
        ),
        ("relative uri escaping", mutated(ready, seq=3, uri="../../etc/shadow"), "contains '..'"),
        (
            "remote uri outside the raw roots",
            mutated(ready, seq=4, uri="root://eos.example.org//eos/raw/900.4.root"),
            "is outside the allowed raw roots",
        ),
        ("end of an unknown run", mutated(end, run_id=778), "run 778 is unknown"),
        ("end before start", mutated(end, end_time="2026-10-01T00:00:00"), "before its start time"),
        ("10 MB payload", json.dumps({**start, "comment": "x" * 10_000_000}), "larger than"),
        ("deep nesting", "[" * 5000 + "]" * 5000, "not valid JSON"),
    ]


def test_bad_messages_are_recorded_with_a_reason(tmp_path: Path, sqlite_database: str) -> None:
    settings = make_settings(tmp_path, sqlite_database)
    raw_dir = settings.raw_dir
    start = good(
        "run_start", run_id=900, run_type="physics", start_time="2026-11-01T08:00:00", detector="CD"
    )
    publish_raw(settings, json.dumps(start))
    corpus = bad_messages(raw_dir)
    publish_raw(settings, *(body for _case, body, _reason in corpus))
    # Duplicates: the same message again, the same run again, the same file again under a new id.
    publish_raw(
        settings, json.dumps(start), json.dumps({**start, "message_id": "another-start-900"})
    )
    good_run = simulate(settings, 905, n_files=2, events=40)  # a good run in the middle of it all
    f0 = good_run.files[0]
    publish_raw(
        settings,
        json.dumps(
            good(
                "file_ready",
                run_id=905,
                seq=0,
                uri=str(f0.path),
                size=f0.size,
                checksum=f0.checksum,
                n_events=f0.n_events,
            )
        ),
    )

    run_server(settings)

    with session(settings) as s:
        rejected = queries.messages(s, outcome=MessageOutcome.REJECTED, limit=None)
        duplicates = queries.messages(s, outcome=MessageOutcome.DUPLICATE, limit=None)
        reasons = [m.error for m in reversed(rejected)]
        assert len(rejected) == len(corpus)
        for (case, _body, words), reason in zip(corpus, reasons, strict=True):
            assert words in reason, f"{case}: {reason}"
            assert "\n" not in reason and len(reason) < 600, case
        assert [m.error for m in reversed(duplicates)] == [
            f"duplicate of message {start['message_id']}, already recorded",
            "run 900 was already started.",
            "run 905 already has file 0 (" + str(f0.path) + ").",
        ]
        # The 10 MB payload is kept in part, and says so.
        big = next(m for m in rejected if "larger than" in m.error and len(m.payload) > 100_000)
        assert len(big.payload) == 1 << 20 and "first 1048576 kept" in big.error
        # Nothing else was disturbed.
        assert queries.get_run(s, run_id=905).status is RunStatus.ALL_COMPLETED
        assert queries.get_run(s, run_id=900).status is RunStatus.DATA_TAKING
        assert [r.run_id for r in queries.recent_runs(s)] == [900, 905]


@pytest.mark.slow
def test_files_that_are_not_dqm_raw_files_fail_with_the_reason(
    tmp_path: Path, sqlite_database: str
) -> None:
    settings = make_settings(tmp_path, sqlite_database)
    run_dir = settings.raw_dir / "910"
    run_dir.mkdir(parents=True)
    candidates = sorted(foreign_root_dir().glob("*.root"))
    assert len(candidates) >= 8
    text = run_dir / "notes.root"
    text.write_text("this is a text file, not ROOT\n" * 100)
    empty = run_dir / "empty.root"
    empty.write_bytes(b"")
    files = [shutil.copy(path, run_dir / path.name) for path in candidates] + [text, empty]
    good_run = simulate(
        settings, 911, n_files=2, events=40, faults=("corrupt:seq=1",), notify=False
    )
    files.append(good_run.files[1].path)  # a truncated DQM file
    from dqm.rawformat import adler32_file

    bodies = [
        good(
            "run_start",
            run_id=910,
            run_type="physics",
            start_time="2026-11-01T08:00:00",
            detector="CD",
        )
    ]
    for seq, path in enumerate(files):
        path = Path(path)
        bodies.append(
            good(
                "file_ready",
                run_id=910,
                seq=seq,
                uri=str(path),
                size=path.stat().st_size,
                checksum=adler32_file(path),
                n_events=1,
            )
        )
    bodies.append(
        good(
            "run_end",
            run_id=910,
            end_time="2026-11-01T09:00:00",
            n_files=len(files),
            n_events=len(files),
        )
    )
    for body in bodies:
        broker.publish(settings, messages.parse_dict(body))
    simulate(settings, 912, n_files=1, events=30)  # and a good run after them

    run_server(settings)

    with session(settings) as s:
        by_file = {f.uri: f for f in queries.files_of_run(s, run_id=910)}
        jobs = {j.file_id: j for j in queries.list_jobs(s, run_id=910, kind="process_file")}
        for path in files:
            file = by_file[str(path)]
            job = jobs[file.id]
            assert job.state is JobState.FAILED and file.state is FileState.FAILED, path
            assert job.attempts == 1, "a file that is not a DQM raw file is not retried"
            assert Path(path).name in job.error
            assert any(
                w in job.error
                for w in ("not a DQM raw file", "cannot be read as ROOT", "is truncated")
            ), job.error
        hzz = jobs[by_file[str(run_dir / "uproot-HZZ.root")].id]
        assert "tree 'events' lacks the branch 'event_id'" in hzz.error
        histograms = jobs[by_file[str(run_dir / "uproot-histograms.root")].id]
        assert "has no tree 'events'" in histograms.error
        assert queries.get_run(s, run_id=910).status is RunStatus.FAILED
        assert queries.get_run(s, run_id=912).status is RunStatus.ALL_COMPLETED
