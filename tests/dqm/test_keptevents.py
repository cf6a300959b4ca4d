"""The kept events: which events a chunk offers, the per-PMT collapse of their hits, the
associative reduction to a file's set, and the encoding."""

from __future__ import annotations

import itertools
import zlib
from dataclasses import replace

import numpy as np
import pytest
from imports import modules_loaded

from dqm import keptevents
from dqm.bytegroups import grouped
from dqm.errors import InvalidValueError
from dqm.keptevents import (
    CHARGE_STEP_PE,
    FORMAT_VERSION,
    MAGIC,
    REASONS,
    TIME_STEP_NS,
    KeptEvent,
    could_enter,
    decode,
    encode,
    reduce_events,
    select_events,
)


def fields(event: KeptEvent) -> tuple[object, ...]:
    """Everything an event holds, comparable with ``==``."""
    return (
        event.entry,
        event.trigger_time_s,
        event.energy_mev,
        event.vertex_mm,
        event.n_hits,
        event.pmt_id.tolist(),
        event.charge_pe.tolist(),
        event.first_hit_ns.tolist(),
        event.reasons,
        event.seq,
    )


def hand_made_chunk() -> dict[str, np.ndarray]:
    """Five events from entry 100 on; 101 is not a physics event (a calibration trigger) and
    103 was not reconstructed."""
    hits = {
        100: [(5, 1.0, 30.0), (5, 2.0, 20.0), (9, 0.5, 40.0)],  # PMT 5 twice
        101: [(1, 1.0, 10.0)],
        102: [(7, 3.0, 25.0)],
        103: [(2, 1.0, 11.0), (3, 1.0, 12.0)],
        104: [(9, 1.5, 50.0), (2, 0.25, 60.0), (9, 0.5, 45.0), (9, 1.0, 70.0)],  # PMT 9 thrice
    }
    flat = [hit for entry in sorted(hits) for hit in hits[entry]]
    return {
        "pmt": np.array([h[0] for h in flat], dtype=np.int32),
        "pe": np.array([h[1] for h in flat], dtype=np.float32),
        "time": np.array([h[2] for h in flat], dtype=np.float32),
        "nhits": np.array([len(hits[e]) for e in sorted(hits)]),
        "physics_index": np.array([0, 2, 4]),
        "vertex": np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-5.0, 5.0, 100.0]]),
        "energy": np.array([2.0, 8.0, 1.0]),
        "trigger_time_s": np.array([10.0, 10.5, 11.0]),
    }


def test_a_chunk_offers_its_first_and_highest_physics_events_with_one_entry_per_pmt() -> None:
    chunk = hand_made_chunk()
    kept = select_events(100, **chunk, keep_first=1, keep_highest=1)
    assert [(e.entry, e.reasons) for e in kept] == [(100, ("first",)), (102, ("highest",))]
    first = kept[0]
    assert first.pmt_id.tolist() == [5, 9] and first.pmt_id.dtype == np.int32
    assert first.charge_pe.tolist() == [3.0, 0.5] and first.charge_pe.dtype == np.float32
    assert first.first_hit_ns.tolist() == [20.0, 40.0] and first.first_hit_ns.dtype == np.float32
    assert first.n_hits == 3 and first.n_pmts == 2
    assert first.vertex_mm == (1.0, 2.0, 3.0) and first.trigger_time_s == 10.0

    both = select_events(100, **chunk, keep_first=2, keep_highest=1)
    assert [(e.entry, e.reasons) for e in both] == [(100, ("first",)), (102, ("first", "highest"))]

    everything = select_events(100, **chunk)
    assert [e.entry for e in everything] == [100, 102, 104]
    last = everything[-1]
    assert last.pmt_id.tolist() == [2, 9]
    assert last.charge_pe.tolist() == [0.25, 3.0]
    assert last.first_hit_ns.tolist() == [60.0, 45.0]
    assert last.n_hits == 4 and last.energy_mev == 1.0
    assert last.reasons == ("first", "highest")


def test_entries_of_a_sampled_chunk_are_given_one_by_one() -> None:
    chunk = hand_made_chunk()
    kept = select_events([3, 8, 20, 21, 40], **chunk, keep_first=1, keep_highest=1)
    assert [e.entry for e in kept] == [3, 20]
    with pytest.raises(ValueError, match="entries"):
        select_events([3, 8], **chunk)


def test_inconsistent_arrays_are_refused() -> None:
    chunk = hand_made_chunk()
    with pytest.raises(ValueError, match="hits"):
        select_events(0, **{**chunk, "pe": chunk["pe"][:-1]})
    with pytest.raises(ValueError, match="same events"):
        select_events(0, **{**chunk, "energy": chunk["energy"][:2]})


def test_an_energy_that_is_not_finite_is_never_the_highest() -> None:
    chunk = hand_made_chunk()
    chunk["energy"] = np.array([np.nan, np.inf, 1.0])
    kept = select_events(100, **chunk, keep_first=0, keep_highest=2)
    assert [e.entry for e in kept] == [104]


def test_an_empty_chunk_or_one_without_physics_events_offers_nothing() -> None:
    empty = select_events(
        0,
        pmt=np.zeros(0, np.int32),
        pe=np.zeros(0, np.float32),
        time=np.zeros(0, np.float32),
        nhits=np.zeros(0, np.int64),
        physics_index=np.zeros(0, np.int64),
        vertex=np.zeros((0, 3)),
        energy=np.zeros(0),
        trigger_time_s=np.zeros(0),
    )
    assert empty == []
    chunk = hand_made_chunk()
    none = {**chunk, "physics_index": [], "vertex": np.zeros((0, 3)), "energy": []}
    assert select_events(0, **{**none, "trigger_time_s": []}) == []
    assert reduce_events([]) == []


def random_chunk(rng: np.random.Generator, n_events: int) -> dict[str, np.ndarray]:
    nhits = rng.integers(0, 40, n_events)
    n = int(nhits.sum())
    physics = np.flatnonzero(rng.random(n_events) < 0.8)
    energy = rng.exponential(2.0, physics.size).round(1)  # rounded: ties on energy
    return {
        "pmt": rng.integers(0, 30, n).astype(np.int32),  # few PMTs: many with several hits
        "pe": rng.exponential(1.0, n).astype(np.float32),
        "time": rng.uniform(0, 1000, n).astype(np.float32),
        "nhits": nhits,
        "physics_index": physics,
        "vertex": rng.normal(0, 5000, (physics.size, 3)),
        "energy": energy,
        "trigger_time_s": physics * 1e-3,
    }


def sliced(chunk: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """The events ``start`` to ``stop`` of a chunk, as a chunk of their own."""
    bounds = np.concatenate(([0], np.cumsum(chunk["nhits"])))
    hits = slice(bounds[start], bounds[stop])
    physics = chunk["physics_index"]
    mine = (physics >= start) & (physics < stop)
    return {
        "pmt": chunk["pmt"][hits],
        "pe": chunk["pe"][hits],
        "time": chunk["time"][hits],
        "nhits": chunk["nhits"][start:stop],
        "physics_index": physics[mine] - start,
        "vertex": chunk["vertex"][mine],
        "energy": chunk["energy"][mine],
        "trigger_time_s": chunk["trigger_time_s"][mine],
    }


@pytest.mark.parametrize("seed", range(5))
def test_reducing_chunks_and_ranges_gives_the_file_set_for_any_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_events = 400
    chunk = random_chunk(rng, n_events)
    whole = [fields(e) for e in select_events(1000, **chunk)]
    assert len(whole) >= 15  # the first and the highest overlap in a few events at most
    for _ in range(4):
        cuts = np.sort(rng.choice(np.arange(1, n_events), rng.integers(1, 12), replace=False))
        edges = [0, *cuts.tolist(), n_events]
        per_chunk = [
            select_events(1000 + a, **sliced(chunk, a, b)) for a, b in itertools.pairwise(edges)
        ]
        flat = reduce_events(e for part in per_chunk for e in part)
        assert [fields(e) for e in flat] == whole
        # reduced per range of chunks (of any size), then over the ranges, in any order
        k = int(rng.integers(1, len(per_chunk) + 1))
        ranges = [
            reduce_events(e for part in per_chunk[:k] for e in part),
            reduce_events(e for part in per_chunk[k:] for e in part),
        ]
        rng.shuffle(ranges)
        nested = reduce_events([*ranges[0], *ranges[1]])
        assert [fields(e) for e in nested] == whole
        assert [fields(e) for e in reduce_events(nested)] == whole  # idempotent


@pytest.mark.parametrize("seed", range(5))
def test_offering_only_the_events_that_could_enter_gives_the_same_set(seed: int) -> None:
    """The pipeline gives select_events only what could_enter lets through, chunk after chunk,
    whatever the chunks' order: the file's set is the same as from every event."""
    rng = np.random.default_rng(100 + seed)
    n_events = 600
    chunk = random_chunk(rng, n_events)
    whole = [fields(e) for e in select_events(0, **chunk)]
    edges = [0, *np.sort(rng.choice(np.arange(1, n_events), 9, replace=False)).tolist(), n_events]
    parts = list(itertools.pairwise(edges))
    offered = []
    for order in (parts, parts[::-1]):
        offered.append(0)
        kept: list[KeptEvent] = []
        for a, b in order:
            part = sliced(chunk, a, b)
            entries = a + np.asarray(part["physics_index"])
            mine = could_enter(kept, entries, part["energy"])
            offered[-1] += int(mine.sum())
            some = {
                **part,
                "physics_index": part["physics_index"][mine],
                "vertex": part["vertex"][mine],
                "energy": part["energy"][mine],
                "trigger_time_s": part["trigger_time_s"][mine],
            }
            kept = reduce_events([*kept, *select_events(a, **some)])
        assert [fields(e) for e in kept] == whole
    assert offered[0] < len(chunk["physics_index"]) / 2  # in order, most are never offered
    nothing = could_enter(kept, [0, 10**6], [1e9, -1.0], keep_first=0, keep_highest=0)
    assert not nothing.any()


def test_reduce_gives_the_reasons_again_and_keeps_each_entry_once() -> None:
    def event(entry: int, energy: float, reasons: tuple[str, ...]) -> KeptEvent:
        empty = np.zeros(0)
        return KeptEvent(entry, 0.0, energy, (0.0, 0.0, 0.0), 0, empty, empty, empty, reasons)

    candidates = [
        event(5, 1.0, ("first",)),
        event(7, 9.0, ("highest",)),
        event(5, 1.0, ("first",)),
        event(3, 9.0, ("first",)),
        event(9, 2.0, ("first", "highest")),
    ]
    kept = reduce_events(candidates, keep_first=2, keep_highest=2)
    # 3 and 7 tie on energy: the smaller entry wins; 9 is neither first nor highest any more
    assert [(e.entry, e.reasons) for e in kept] == [
        (3, ("first", "highest")),
        (5, ("first",)),
        (7, ("highest",)),
    ]
    highest = reduce_events(candidates, keep_first=0, keep_highest=1)
    assert [e.entry for e in highest] == [3]
    assert [e.entry for e in reduce_events(candidates[::-1], keep_first=0, keep_highest=1)] == [3]


def assert_same(back: list[KeptEvent], events: list[KeptEvent]) -> None:
    """Every field the same, charges and times to within half their step."""
    exact = [fields(e)[:5] + fields(e)[5:6] + fields(e)[8:9] for e in events]
    assert [fields(e)[:5] + fields(e)[5:6] + fields(e)[8:9] for e in back] == exact
    for got, given in zip(back, events, strict=True):
        charge = np.abs(got.charge_pe - given.charge_pe)
        assert charge.max(initial=0) <= CHARGE_STEP_PE / 2 + 1e-4 * np.abs(given.charge_pe).max(
            initial=0
        )
        time = np.abs(got.first_hit_ns - given.first_hit_ns)
        assert time.max(initial=0) <= TIME_STEP_NS / 2 + 1e-4 * np.abs(given.first_hit_ns).max(
            initial=0
        )


def encode_v1(events: list[KeptEvent]) -> bytes:
    """Version 1 of the encoding (charges and times as float32), as stored before version 2."""
    table = np.zeros(len(events), dtype=keptevents._EVENT_DTYPE)
    for name in ("entry", "trigger_time_s", "energy_mev", "vertex_mm", "n_hits", "n_pmts"):
        table[name] = [getattr(e, name) for e in events]
    table["reasons"] = [sum(1 << REASONS.index(r) for r in e.reasons) for e in events]
    ids = np.concatenate([e.pmt_id for e in events]).astype("<i4").view("<u4")
    payload = b"".join(
        (
            keptevents._COUNT.pack(len(events)),
            table.tobytes(),
            grouped(np.diff(ids, prepend=np.zeros(1, "<u4")), "<u4"),
            grouped(np.concatenate([e.charge_pe for e in events]), "<f4"),
            grouped(np.concatenate([e.first_hit_ns for e in events]), "<f4"),
        )
    )
    return MAGIC + bytes([1]) + zlib.compress(payload)


def test_encode_and_decode_give_back_every_field() -> None:
    rng = np.random.default_rng(7)
    events = select_events(0, **random_chunk(rng, 200))
    data = encode(events)
    assert data.startswith(MAGIC) and data[len(MAGIC)] == FORMAT_VERSION
    back = decode(data, seq=12)
    assert_same(back, events)
    assert {e.seq for e in back} == {12}
    assert back[0].pmt_id.dtype == np.int32 and back[0].charge_pe.dtype == np.float32
    assert decode(encode([])) == []
    # encoding what was decoded gives the same bytes: the steps do not drift
    assert encode(back) == data
    # what was stored in version 1 reads exactly
    old = decode(encode_v1(events), seq=12)
    assert [fields(e) for e in old] == [fields(replace(e, seq=12)) for e in events]


def test_the_encoding_is_compact_for_events_of_realistic_size() -> None:
    rng = np.random.default_rng(3)
    events = []
    for entry in range(20):
        n = int(rng.integers(1_500, 15_000))
        pmt = np.sort(rng.choice(17_612, n, replace=False)).astype(np.int32)
        events.append(
            KeptEvent(
                entry=entry,
                trigger_time_s=entry * 0.01,
                energy_mev=float(n) / 1500,
                vertex_mm=(1.0, 2.0, 3.0),
                n_hits=n + 100,
                pmt_id=pmt,
                charge_pe=rng.exponential(1.0, n).round(2),
                first_hit_ns=rng.normal(250.0, 20.0, n),
                reasons=("first",),
            )
        )
    data = encode(events)
    raw = sum(10 * e.n_pmts for e in events)  # uint16 ids and two float32 columns, as they come
    assert len(data) < 0.4 * raw  # about 3 bytes a fired PMT
    assert_same(decode(data), events)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "header"),
        (b"not kept events at all", "header"),
        (MAGIC + bytes([FORMAT_VERSION + 1]) + zlib.compress(b"x"), "version 3"),
        (MAGIC + bytes([FORMAT_VERSION]) + b"garbage", "damaged"),
        (MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(b"\x01\x00"), "damaged"),
        (
            MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(b"\x02\x00\x00\x00" + b"\x00" * 40),
            "damaged",
        ),
    ],
)
def test_garbage_is_refused_in_one_sentence(data: bytes, words: str) -> None:
    with pytest.raises(InvalidValueError, match=words) as caught:
        decode(data)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")


def test_truncated_bytes_are_refused() -> None:
    data = encode(select_events(0, **random_chunk(np.random.default_rng(1), 50)))
    with pytest.raises(InvalidValueError, match="damaged"):
        decode(data[:-10])
    tampered = zlib.decompress(data[len(MAGIC) + 1 :])[:-4]
    with pytest.raises(InvalidValueError, match="damaged"):
        decode(MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(tampered))


def test_the_module_needs_numpy_only() -> None:
    watched = ["app", "daqsim", "pandas", "panel", "pipeline", "sqlalchemy"]
    assert modules_loaded(["dqm.keptevents"], watched) == []


def test_the_runs_set_goes_by_file_then_entry_and_reduces_per_file_sets_in_any_order() -> None:
    def event(seq: int, entry: int, energy: float) -> KeptEvent:
        empty = np.zeros(0)
        return KeptEvent(entry, 0.0, energy, (0.0, 0.0, 0.0), 0, empty, empty, empty, (), seq)

    rng = np.random.default_rng(5)
    files = [
        [
            event(seq, int(entry), float(rng.exponential(3.0)))
            for entry in range(50 * seq, 50 * seq + 40)
        ]
        for seq in (2, 0, 1)
    ]
    whole = reduce_events([e for f in files for e in f], keep_first=3, keep_highest=4)
    firsts = [(e.seq, e.entry) for e in whole if "first" in e.reasons]
    assert firsts == [(0, 0), (0, 1), (0, 2)]  # file 0 first, though it came second
    energies = sorted((e.energy_mev for f in files for e in f), reverse=True)[:4]
    assert sorted(e.energy_mev for e in whole if "highest" in e.reasons) == sorted(energies)
    assert [(e.seq, e.entry) for e in whole] == sorted((e.seq, e.entry) for e in whole)
    per_file = [reduce_events(f, keep_first=3, keep_highest=4) for f in files]
    for order in itertools.permutations(per_file):
        again = reduce_events([e for f in order for e in f], keep_first=3, keep_highest=4)
        assert [fields(e) for e in again] == [fields(e) for e in whole]
    # the same entry in two files is two events
    assert len(reduce_events([event(0, 7, 1.0), event(1, 7, 1.0)])) == 2
