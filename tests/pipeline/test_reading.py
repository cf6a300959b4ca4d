"""Reading raw files: the reader returns exactly the known contents of the committed raw files
(tests/rawfixtures.py), in any chunking, for any range of entries and with sampling; files not there
as announced, and files that are not raw files, are told apart."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rawfixtures import EMPTY_EVENT, FIVE_EVENTS, FIXTURES, NO_EVENTS, RawFixture
from services import foreign_root_dir

from dqm import rawformat
from pipeline.stages.reading import (
    EventChunk,
    FileNotReady,
    count_events,
    iterate_events,
    sample_mask,
    verify_file,
)

PER_EVENT = ("event_id", "trigger_time", "trigger_type", "nhits")
PER_HIT = ("pmt_id", "adc", "tdc")


def read_all(
    fixture: RawFixture, **options: object
) -> tuple[list[EventChunk], dict[str, np.ndarray]]:
    """The chunks of a fixture, and their columns concatenated."""
    chunks = list(iterate_events(fixture.path, run_id=fixture.run_id, seq=fixture.seq, **options))
    columns = (
        {
            name: np.concatenate([getattr(chunk, name) for chunk in chunks])
            for name in PER_EVENT + PER_HIT
        }
        if chunks
        else {}
    )
    return chunks, columns


def expected(fixture: RawFixture, keep: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
    """The columns an :class:`EventChunk` holds for the events ``keep`` of a fixture."""
    per_event = fixture.per_event()
    columns = {name: per_event[name][keep] for name in PER_EVENT}
    columns["nhits"] = columns["nhits"].astype(np.int64)
    kept = np.arange(len(fixture.events))[keep]
    for name in PER_HIT:
        hits = fixture.hits_of(name)
        columns[name] = np.concatenate(
            [hits[i] for i in kept] or [np.zeros(0, rawformat.HIT_FIELDS[name])]
        )
    return columns


def assert_columns_equal(found: dict[str, np.ndarray], wanted: dict[str, np.ndarray]) -> None:
    assert found.keys() == wanted.keys()
    for name, values in wanted.items():
        assert found[name].dtype == values.dtype, name
        np.testing.assert_array_equal(found[name], values, err_msg=name)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_count_events(fixture: RawFixture) -> None:
    assert count_events(fixture.path) == len(fixture.events)


def test_the_five_events_exactly() -> None:
    (chunk,), columns = read_all(FIVE_EVENTS)
    assert chunk.n_read == chunk.n_events == 5
    assert_columns_equal(columns, expected(FIVE_EVENTS))
    # spelled out once, as a reader of the file sees it
    np.testing.assert_array_equal(chunk.nhits, [3, 2, 4, 1, 3])
    np.testing.assert_array_equal(
        chunk.pmt_id, [0, 17, 17_611, 5, 6, 100, 101, 102, 103, 42, 9_000, 9_000, 17_000]
    )
    np.testing.assert_array_equal(chunk.trigger_type, [1, 1, 2, 3, 1])
    assert chunk.trigger_time[-1] == 5_000_001_024 and chunk.adc[4] == np.float32(-1.5)


def test_an_event_without_hits_keeps_its_place() -> None:
    (chunk,), columns = read_all(EMPTY_EVENT)
    assert_columns_equal(columns, expected(EMPTY_EVENT))
    np.testing.assert_array_equal(chunk.nhits, [2, 0, 1])
    np.testing.assert_array_equal(chunk.pmt_id, [1, 2, 3])


def test_a_file_without_events_gives_no_chunk() -> None:
    chunks, _ = read_all(NO_EVENTS)
    assert chunks == []


@pytest.mark.parametrize("step", [1, 2, 3, 4, 500])
def test_any_chunking_gives_the_same_events(step: int) -> None:
    """Chunks of 2 events cross the file's basket boundary (after the third event)."""
    chunks, columns = read_all(FIVE_EVENTS, step_events=step)
    assert [chunk.n_read for chunk in chunks] == [min(step, 5 - k) for k in range(0, 5, step)]
    assert_columns_equal(columns, expected(FIVE_EVENTS))


@pytest.mark.parametrize(("start", "stop"), [(0, 3), (1, 4), (3, 5), (4, 5), (2, 2)])
def test_a_range_of_entries(start: int, stop: int) -> None:
    chunks, columns = read_all(FIVE_EVENTS, entry_start=start, entry_stop=stop, step_events=2)
    assert sum(chunk.n_read for chunk in chunks) == stop - start
    if stop > start:
        assert_columns_equal(columns, expected(FIVE_EVENTS, slice(start, stop)))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("step", [1, 2, 500])
def test_sampling_keeps_the_hits_of_the_kept_events(fraction: float, step: int) -> None:
    ids = FIVE_EVENTS.per_event()["event_id"]
    keep = sample_mask(FIVE_EVENTS.run_id, FIVE_EVENTS.seq, ids, fraction)
    chunks, columns = read_all(FIVE_EVENTS, sampling_fraction=fraction, step_events=step)
    assert sum(chunk.n_read for chunk in chunks) == 5
    assert sum(chunk.n_events for chunk in chunks) == keep.sum()
    assert_columns_equal(columns, expected(FIVE_EVENTS, keep))


def test_sample_mask_is_a_fraction_and_depends_on_run_and_file() -> None:
    ids = np.arange(200_000, dtype=np.uint64)
    mask = sample_mask(1, 0, ids, 0.2)
    assert abs(mask.mean() - 0.2) < 0.005
    np.testing.assert_array_equal(mask, sample_mask(1, 0, ids, 0.2))
    assert not np.array_equal(mask, sample_mask(2, 0, ids, 0.2))
    assert not np.array_equal(mask, sample_mask(1, 1, ids, 0.2))
    assert np.all(mask <= sample_mask(1, 0, ids, 0.5))  # a larger fraction keeps more
    assert sample_mask(1, 0, ids, 1.0).all() and not sample_mask(1, 0, ids, 0.0).any()


def test_a_file_not_there_as_announced_is_not_ready(tmp_path: Path) -> None:
    path = Path(shutil.copy(FIVE_EVENTS.path, tmp_path / "7001.0.root"))
    size, checksum = path.stat().st_size, rawformat.adler32_file(path)
    verify_file(path, size, checksum)
    verify_file(path, None, None)
    with pytest.raises(FileNotReady, match=f"has {size} bytes, {size + 1} were announced"):
        verify_file(path, size + 1, checksum)
    with pytest.raises(FileNotReady, match=f"has adler32 {checksum}, 00000001 was announced"):
        verify_file(path, size, "00000001")
    with pytest.raises(FileNotReady, match="has not arrived"):
        verify_file(tmp_path / "7001.1.root", size, checksum)


def test_a_foreign_file_is_refused_before_the_first_chunk() -> None:
    path = foreign_root_dir() / "uproot-HZZ.root"
    with pytest.raises(rawformat.RawFormatError, match="lacks the branch 'event_id'"):
        next(iterate_events(path, run_id=1, seq=0))
    with pytest.raises(rawformat.RawFormatError, match="lacks the branch 'event_id'"):
        count_events(path)
