"""The raw format's checks on the committed raw files of known contents (tests/rawfixtures.py) and
on files that break the format in one way each; names, paths and checksums of raw files."""

from __future__ import annotations

import json
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import uproot
from rawfixtures import EMPTY_EVENT, FIVE_EVENTS, FIXTURES, HITS, HITS_TYPE, RawFixture

from dqm import rawformat
from dqm.errors import InvalidValueError
from dqm.rawformat import RawFormatError


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_a_raw_file_passes_the_check(fixture: RawFixture) -> None:
    with uproot.open(fixture.path) as file:
        tree = rawformat.check_events_tree(file, fixture.path)
        assert tree.num_entries == len(fixture.events)
        assert {b.name for b in tree.branches} == {
            *rawformat.EVENT_BRANCHES,
            *rawformat.HIT_BRANCHES,
            rawformat.HIT_COUNTER,
        }
        assert json.loads(str(file[rawformat.RUN_INFO_KEY])) == fixture.run_info()


def _write(path: Path, branches: dict[str, object], data: dict[str, object]) -> Path:
    with uproot.recreate(path) as out:
        out.mktree(rawformat.EVENTS_TREE, branches)
        out[rawformat.EVENTS_TREE].extend(data)
    return path


def _one_event(**changes: object) -> tuple[dict[str, object], dict[str, object]]:
    """Branch types and data of a one-event raw file, with ``changes`` (None drops a branch)."""
    import awkward as ak

    branches: dict[str, object] = {**rawformat.EVENT_BRANCHES, HITS: HITS_TYPE}
    data: dict[str, object] = {
        "event_id": np.array([0], np.uint64),
        "trigger_time": np.array([10], np.int64),
        "trigger_type": np.array([rawformat.TRIGGER_GLOBAL], np.int8),
        HITS: ak.unflatten(
            ak.zip(
                {
                    "pmt_id": np.array([3], np.int32),
                    "adc": np.array([1.0], np.float32),
                    "tdc": np.array([2.0], np.float32),
                }
            ),
            [1],
        ),
    }
    for name, value in changes.items():
        if value is None:
            del branches[name], data[name]
        else:
            branches[name], data[name] = value
    return branches, data


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"trigger_type": None},
            "tree 'events' lacks the branch 'trigger_type'.",
        ),
        (
            {"trigger_type": (np.int32, np.array([1], np.int32))},
            "branch 'trigger_type' is AsDtype('>i4'), expected int8.",
        ),
        (
            {"event_id": (np.int64, np.array([0], np.int64))},
            "branch 'event_id' is AsDtype('>i8'), expected uint64.",
        ),
        (
            {HITS: None, "hits_pmt_id": (np.int32, np.array([3], np.int32))},
            "branch 'hits_pmt_id' is AsDtype('>i4'), expected jagged int32.",
        ),
    ],
    ids=["missing branch", "mistyped branch", "signed event id", "hits not jagged"],
)
def test_a_file_that_breaks_the_format_is_refused_with_the_reason(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    branches, data = _one_event(**changes)
    path = _write(tmp_path / "odd.root", branches, data)
    with uproot.open(path) as file, pytest.raises(RawFormatError) as info:
        rawformat.check_events_tree(file, path)
    assert str(info.value) == f"odd.root is not a DQM raw file: {reason}"


def test_a_file_without_the_tree_says_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "other.root"
    with uproot.recreate(path) as out:
        out["notes"] = "no events here"
        out.mktree("hits", {"x": np.float32})
    with uproot.open(path) as file, pytest.raises(RawFormatError) as info:
        rawformat.check_events_tree(file, path)
    assert str(info.value) == (
        "other.root is not a DQM raw file: it has no tree 'events' (it holds hits, notes)."
    )


def test_a_truncated_file_is_named_so(tmp_path: Path) -> None:
    path = Path(shutil.copy(FIVE_EVENTS.path, tmp_path / "cut.root"))
    with uproot.open(path) as file:
        ends = {
            branch.name: int(
                max(
                    seek + size
                    for seek, size in zip(
                        branch.member("fBasketSeek")[: branch.num_baskets],
                        branch.member("fBasketBytes")[: branch.num_baskets],
                        strict=True,
                    )
                )
            )
            for branch in file[rawformat.EVENTS_TREE].branches
        }
    end = max(ends.values())
    last = next(name for name, value in ends.items() if value == end)
    with open(path, "r+b") as fh:
        fh.truncate(end - 1)
    with uproot.open(path) as file, pytest.raises(RawFormatError) as info:
        rawformat.check_events_tree(file, path)
    assert str(info.value) == (
        f"cut.root is truncated: branch '{last}' has data up to byte {end}, "
        f"the file ends at {end - 1}."
    )


def test_raw_file_names_and_paths(tmp_path: Path) -> None:
    assert rawformat.raw_file_name(7001, 2) == "7001.2.root"
    assert rawformat.raw_file_path(tmp_path, 7001, 2) == tmp_path / "7001" / "7001.2.root"


@pytest.mark.parametrize("fixture", [FIVE_EVENTS, EMPTY_EVENT], ids=lambda f: f.name)
def test_adler32_as_eight_hex_digits_in_any_chunking(fixture: RawFixture) -> None:
    expected = f"{zlib.adler32(fixture.path.read_bytes()):08x}"
    assert rawformat.adler32_file(fixture.path) == expected
    assert rawformat.adler32_file(fixture.path, chunk_bytes=1_000) == expected


def test_adler32_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert rawformat.adler32_file(tmp_path / "empty") == "00000001"


def test_announced_uris_resolve_under_a_raw_root_only(tmp_path: Path) -> None:
    root, other = tmp_path / "raw", tmp_path / "elsewhere"
    path = rawformat.raw_file_path(root, 7001, 0)
    path.parent.mkdir(parents=True)
    shutil.copy(FIVE_EVENTS.path, path)
    for uri in (str(path), f"file://{path}", "7001/7001.0.root"):
        assert rawformat.resolve_raw_uri(uri, [root, other]) == path.resolve()
    refused = {
        "s3://bucket/7001.0.root": "scheme 's3' is not supported",
        f"{root}/7001/../7001/7001.0.root": "contains '..'",
        "/etc/hosts": "is outside the allowed raw roots",
        f"{root}/7001\x00.root": "contains a NUL character",
    }
    for uri, words in refused.items():
        with pytest.raises(InvalidValueError, match=words):
            rawformat.resolve_raw_uri(uri, [root])


def test_root_urls_resolve_under_a_url_root_in_their_canonical_form(tmp_path: Path) -> None:
    roots = [tmp_path, "root://EOS.example.org//eos/juno/raw/"]
    for uri in (
        "root://eos.example.org//eos/juno/raw/7001/7001.0.root",
        "root://eos.example.org:1094//eos/juno/raw/7001/7001.0.root",
        "xroot://eos.example.org/eos/juno/raw/./7001/7001.0.root",
    ):
        assert rawformat.resolve_raw_uri(uri, roots) == (
            "root://eos.example.org:1094//eos/juno/raw/7001/7001.0.root"
        )
    refused = {
        "root://eos.example.org//eos/juno/rawer/7001.0.root": "outside the allowed raw roots",
        "root://eos.example.org:1095//eos/juno/raw/7001.0.root": "outside the allowed raw roots",
        "root://other.example.org//eos/juno/raw/7001.0.root": "outside the allowed raw roots",
        "root://eos.example.org//eos/juno/raw/../secret.root": "contains '..'",
        "root://eos.example.org//eos/juno/raw/a.root?authz=x": "no query, fragment or NUL",
        "root://eos.example.org:port//eos/juno/raw/a.root": "port 'port' is not a number",
        "root:///eos/juno/raw/a.root": "names no server",
        "https://eos.example.org//eos/juno/raw/a.root": "scheme 'https' is not supported",
    }
    for uri, words in refused.items():
        with pytest.raises(InvalidValueError, match=re.escape(words)):
            rawformat.resolve_raw_uri(uri, roots)
    with pytest.raises(InvalidValueError, match="the allowed raw roots are URLs only"):
        rawformat.resolve_raw_uri(str(tmp_path / "7001.0.root"), roots[1:])


@pytest.mark.parametrize(
    ("text", "roots"),
    [
        ("/data/raw", ["/data/raw"]),
        ("/data/raw:/eos/juno/raw", ["/data/raw", "/eos/juno/raw"]),
        ("root://eos.example.org//eos/juno/raw", ["root://eos.example.org//eos/juno/raw"]),
        (
            "root://eos.example.org:1094//eos/juno/raw:/data/raw:xroot://b.example.org//raw",
            [
                "root://eos.example.org:1094//eos/juno/raw",
                "/data/raw",
                "xroot://b.example.org//raw",
            ],
        ),
        ("/data/raw::/b:", ["/data/raw", "/b"]),
    ],
)
def test_a_list_of_raw_roots_splits_at_the_colons_that_are_not_a_urls(
    text: str, roots: list[str]
) -> None:
    assert rawformat.split_raw_roots(text) == roots
