"""The committed raw files (tests/data/raw) hold what tests/rawfixtures.py describes, and writing
them again gives the same contents: they cannot drift from the format or from their description."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from rawfixtures import FIXTURES, RAW_FIXTURES_DIR, RawFixture, write_raw_file

from dqm import rawformat


def read_back(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray], list[int]]:
    """run_info, the branches (hit branches as one array per event) and the basket sizes of a raw
    file, read with plain uproot (not with the readers under test)."""
    with uproot.open(path) as file:
        info = json.loads(str(file[rawformat.RUN_INFO_KEY]))
        tree = file[rawformat.EVENTS_TREE]
        arrays = tree.arrays(library="np")
        baskets = [
            int(tree["event_id"].basket_entry_start_stop(i)[1])
            - int(tree["event_id"].basket_entry_start_stop(i)[0])
            for i in range(tree["event_id"].num_baskets)
        ]
    return info, arrays, baskets


def assert_holds(path: Path, fixture: RawFixture) -> None:
    info, arrays, baskets = read_back(path)
    assert info == fixture.run_info()
    assert baskets == list(fixture.baskets)
    per_event = fixture.per_event()
    assert arrays.keys() == {*per_event, *rawformat.HIT_BRANCHES}
    for name, values in per_event.items():
        assert arrays[name].dtype == values.dtype, name
        np.testing.assert_array_equal(arrays[name], values, err_msg=name)
    for field, dtype in rawformat.HIT_FIELDS.items():
        found = arrays[f"hits_{field}"]
        assert len(found) == len(fixture.events)
        for event, (got, wanted) in enumerate(zip(found, fixture.hits_of(field), strict=True)):
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, wanted, err_msg=f"{field} of event {event}")


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_the_committed_file_holds_what_is_described(fixture: RawFixture) -> None:
    assert_holds(fixture.path, fixture)
    assert fixture.path.stat().st_size < 32_000  # uproot's uncompressed streamers are most of it


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_writing_again_gives_the_same_contents(fixture: RawFixture, tmp_path: Path) -> None:
    again = write_raw_file(fixture, tmp_path / fixture.name)
    assert_holds(again, fixture)
    committed, rewritten = read_back(fixture.path), read_back(again)
    assert committed[0] == rewritten[0] and committed[2] == rewritten[2]
    for name, values in committed[1].items():
        assert len(values) == len(rewritten[1][name])
        for a, b in zip(values, rewritten[1][name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_every_committed_raw_file_is_described() -> None:
    assert sorted(p.name for p in RAW_FIXTURES_DIR.glob("*.root")) == sorted(
        f.name for f in FIXTURES
    )
