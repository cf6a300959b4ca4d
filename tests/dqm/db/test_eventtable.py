"""Event tables: a file's reconstructed events stored with its results and read back per run."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib

import numpy as np
import pytest

from dqm import eventtable
from dqm.db import queries
from dqm.db.models import FileState
from dqm.db.session import transaction
from dqm.errors import InvalidValueError


def _columns(n: int, offset: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {name: (rng.normal(size=n) + offset).astype(np.float32) for name in eventtable.COLUMNS}


def test_a_runs_events_are_its_done_files_in_order(database: str) -> None:
    with transaction(database) as s:
        queries.add_run(s, run_id=5, run_type="physics", start_time=dt.datetime(2026, 11, 1))
        files = [queries.add_file(s, run_id=5, seq=k, uri=f"/raw/5.{k}.root") for k in range(3)]
        for k, file in enumerate(files):
            queries.save_event_table(s, run_id=5, file_id=file.id, columns=_columns(100, 10 * k))
        files[0].state = files[2].state = FileState.DONE  # file 1 not done: left out
        # processing file 2 again replaces its table
        queries.save_event_table(s, run_id=5, file_id=files[2].id, columns=_columns(50, 20))
    with transaction(database) as s:
        events = queries.run_events(s, run_id=5)
        assert set(events) == set(eventtable.COLUMNS)
        assert len(events["x_mm"]) == 150 and events["x_mm"].dtype == np.float32
        np.testing.assert_array_equal(events["energy_mev"][:100], _columns(100, 0)["energy_mev"])
        np.testing.assert_array_equal(events["energy_mev"][100:], _columns(50, 20)["energy_mev"])
        assert len(queries.run_events(s, run_id=5, max_events=120)["z_mm"]) == 120
        assert len(queries.run_events(s, run_id=999)["z_mm"]) == 0


def test_bad_tables_are_refused() -> None:
    columns = _columns(10, 0)
    with pytest.raises(InvalidValueError, match="needs the columns time_s"):
        eventtable.encode_event_table({k: v for k, v in columns.items() if k != "time_s"})
    with pytest.raises(InvalidValueError, match="differ in length"):
        eventtable.encode_event_table({**columns, "x_mm": columns["x_mm"][:5]})
    assert (
        len(eventtable.encode_event_table(_columns(20_000, 0))) < 500_000
    )  # compact: about 0.4 MB raw


def _physics_like(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_mm": rng.uniform(-17_000, 17_000, n).astype(np.float32),
        "y_mm": rng.uniform(-17_000, 17_000, n).astype(np.float32),
        "z_mm": rng.uniform(-17_000, 17_000, n).astype(np.float32),
        "energy_mev": rng.exponential(2.0, n).astype(np.float32),
        "time_s": np.sort(rng.uniform(0, 3600, n)).astype(np.float32),
    }


def _rows(columns: dict[str, np.ndarray]) -> list[tuple[float, ...]]:
    return list(zip(*(columns[name].tolist() for name in eventtable.COLUMNS), strict=True))


def test_the_sample_of_the_files_samples_is_the_sample_of_the_run() -> None:
    files = [_physics_like(n, seed) for seed, n in enumerate((3_000, 500, 4_000, 2_500))]
    size = 2_000
    run = eventtable.sample(
        {name: np.concatenate([f[name] for f in files]) for name in eventtable.COLUMNS}, size
    )
    assert len(run["x_mm"]) == size
    stored = [
        eventtable.read_event_table(eventtable.encode_event_table(f, sample_size=size))
        for f in files
    ]
    assert [t.sample_size for t in stored] == [size] * 4
    assert [len(t.columns["x_mm"]) for t in stored] == [2_000, 500, 2_000, 2_000]
    merged = eventtable.merge_tables(stored)
    assert merged.sample_size == size and _rows(merged.columns) == _rows(run)
    # in any grouping and order of the files, as a set of events
    rng = np.random.default_rng(1)
    for _ in range(3):
        order = rng.permutation(len(stored))
        left = eventtable.merge_tables([stored[k] for k in order[:2]])
        right = eventtable.merge_tables([stored[k] for k in order[2:]])
        again = eventtable.merge_tables([right, left])
        assert sorted(_rows(again.columns)) == sorted(_rows(run))
    # the smallest size any table was sampled to wins; unsampled tables alone give every event
    smaller = eventtable.merge_tables([*stored, eventtable.StoredTable(files[1], 800)])
    assert smaller.sample_size == 800 and len(smaller.columns["x_mm"]) == 800
    every = eventtable.merge_tables(eventtable.StoredTable(f, None) for f in files)
    assert every.sample_size is None and len(every.columns["x_mm"]) == 10_000


def test_the_sample_is_uniform() -> None:
    """Any event is as likely to be kept as any other: the sample's distributions are the run's
    within statistical errors (the energy's mean within 4 standard errors; the time is flat, so
    each tenth of the run holds a tenth of the sample within 4 sigma)."""
    events = _physics_like(200_000, 7)
    size = 20_000
    kept = eventtable.sample(events, size)
    energy = kept["energy_mev"].astype(np.float64)
    error = events["energy_mev"].std() / np.sqrt(size)
    assert abs(energy.mean() - events["energy_mev"].mean()) < 4 * error
    counts, _ = np.histogram(kept["time_s"], bins=10, range=(0, 3600))
    expected = size / 10
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))
    assert np.all(np.diff(kept["time_s"]) >= 0)  # the events' order is kept
    # the same event has the same key in any table; the keys of a sample are the smallest
    keys = eventtable.sample_keys(events)
    assert eventtable.sample_keys(kept).max() == np.sort(keys)[size - 1]


def test_a_table_stored_before_samples_existed_reads_as_every_event() -> None:
    columns = _physics_like(100, 3)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **columns)  # the format of tables stored before
    table = eventtable.read_event_table(buffer.getvalue())
    assert table.sample_size is None and _rows(table.columns) == _rows(columns)
    with pytest.raises(InvalidValueError, match="cannot hold -1 events"):
        eventtable.encode_event_table(columns, sample_size=-1)


def test_tables_round_trip_exactly_and_smaller_than_their_floats() -> None:
    columns = _physics_like(20_000, 4)
    columns["energy_mev"][:3] = [np.nan, np.inf, -0.0]
    for size in (None, 5_000, 30_000):
        table = eventtable.read_event_table(
            eventtable.encode_event_table(columns, sample_size=size)
        )
        assert table.sample_size == size
        expected = eventtable.sample(columns, size)
        for name in eventtable.COLUMNS:
            assert table.columns[name].dtype == np.float32
            np.testing.assert_array_equal(table.columns[name], expected[name])
    assert len(eventtable.encode_event_table(columns)) < 0.85 * 20 * 20_000
    empty = eventtable.read_event_table(eventtable.encode_event_table(_physics_like(0, 1)))
    assert len(empty.columns["time_s"]) == 0


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "lack its header"),
        (b"something else", "lack its header"),
        (eventtable.MAGIC + b"\x09" + zlib.compress(b"x"), "format version 9"),
        (eventtable.MAGIC + b"\x01garbage", "damaged"),
        (eventtable.MAGIC + b"\x01" + zlib.compress(struct.pack("<Iq", 10, -1)), "damaged"),
    ],
)
def test_garbage_is_refused_in_one_sentence(data: bytes, words: str) -> None:
    with pytest.raises(InvalidValueError, match=words) as caught:
        eventtable.read_event_table(data)
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


def test_a_runs_events_are_the_sample_of_its_files(database: str) -> None:
    files = [_physics_like(1_500, seed) for seed in range(3)]
    with transaction(database) as s:
        queries.add_run(s, run_id=6, run_type="physics", start_time=dt.datetime(2026, 11, 1))
        for k, columns in enumerate(files):
            file = queries.add_file(s, run_id=6, seq=k, uri=f"/raw/6.{k}.root")
            file.state = FileState.DONE
            row = queries.save_event_table(
                s, run_id=6, file_id=file.id, columns=columns, sample_size=1_000
            )
            assert row.n_events == 1_000
    with transaction(database) as s:
        events = queries.run_events(s, run_id=6)
    whole = {name: np.concatenate([f[name] for f in files]) for name in eventtable.COLUMNS}
    assert _rows(events) == _rows(eventtable.sample(whole, 1_000))
