"""The histogram codec gives back exactly what it was given."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from dqm.histcodec import (
    PACKED,
    array_from_bytes,
    array_to_bytes,
    decode_histogram,
    encode_histogram,
    pack_array,
)


def round_trip(h: hist.Hist) -> hist.Hist:
    e = encode_histogram(h)
    return decode_histogram(e.axes, e.storage, e.values, e.variances)


def test_every_supported_axis_and_storage_round_trips() -> None:
    rng = np.random.default_rng(0)
    n = 2_000
    h = hist.Hist(
        hist.axis.Regular(20, 0, 10, name="energy", label="E [MeV]"),
        hist.axis.Variable([0, 1, 2, 4, 8], name="r3", underflow=False),
        hist.axis.Integer(0, 5, name="type", overflow=False),
        storage=hist.storage.Weight(),
    )
    h.fill(
        rng.uniform(-1, 11, n),
        rng.uniform(-1, 9, n),
        rng.integers(-1, 6, n),
        weight=rng.uniform(0, 2, n),
    )
    assert round_trip(h) == h

    c = hist.Hist(
        hist.axis.StrCategory(["physics", "laser"], growth=True, name="run_type"),
        hist.axis.IntCategory([1, 7]),
        hist.axis.Boolean(name="triggered"),
        hist.axis.Regular(10, 1, 1000, transform=hist.axis.transform.log, name="pe"),
        hist.axis.Regular(8, 0, 360, circular=True, name="phi"),
        storage=hist.storage.Int64(),
    )
    c.fill(
        ["physics", "laser", "random"], [1, 7, 7], [True, False, True], [5, 50, 500], [10, 370, -5]
    )
    back = round_trip(c)
    assert back == c
    assert list(back.axes["run_type"]) == ["physics", "laser", "random"]


def test_entries_default_to_the_sum_including_flow() -> None:
    h = hist.Hist(hist.axis.Regular(2, 0, 1))
    h.fill([-1, 0.2, 0.7, 5])
    assert encode_histogram(h).entries == 4
    assert encode_histogram(h, entries=10).entries == 10


def test_merging_decoded_equals_merging_originals() -> None:
    rng = np.random.default_rng(3)
    parts = []
    for _ in range(3):
        h = hist.Hist(hist.axis.Regular(30, 0, 3000, name="nhits"))
        h.fill(rng.normal(1500, 300, 500))
        parts.append(h)
    assert sum(round_trip(p) for p in parts) == sum(parts)


def test_unsupported_storage_is_refused() -> None:
    h = hist.Hist(hist.axis.Regular(2, 0, 1), storage=hist.storage.Mean())
    with pytest.raises(ValueError, match="storage Mean is not supported"):
        encode_histogram(h)


def test_pmt_arrays_round_trip() -> None:
    values = np.linspace(0, 1, 17_612)
    back = array_from_bytes(array_to_bytes(values))
    np.testing.assert_array_equal(back, values)
    back[0] = 5  # writable copy


def test_packed_pmt_arrays_round_trip_and_are_smaller() -> None:
    rng = np.random.default_rng(2)
    counts = rng.poisson(80_000, 17_612).astype(float)
    sums = counts * rng.normal(1.0, 0.3, counts.size)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-300, 1e300])
    for values in (counts, sums, special, np.zeros(0)):
        packed = pack_array(values)
        back = array_from_bytes(packed)
        assert back.dtype == np.float64 and back.flags.writeable
        np.testing.assert_array_equal(back, values)
        assert np.signbit(back).tolist() == np.signbit(values).tolist()
    assert len(pack_array(counts)) < 0.4 * counts.nbytes
    assert len(pack_array(sums)) < 0.95 * sums.nbytes
    # plain bytes, as stored before arrays were packed, read as they always did
    np.testing.assert_array_equal(array_from_bytes(array_to_bytes(sums)), sums)
    with pytest.raises(ValueError, match="packed per-PMT array is damaged"):
        array_from_bytes(PACKED + b"not zlib")
