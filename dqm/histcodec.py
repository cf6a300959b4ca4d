"""Lossless conversion of ``hist.Hist`` objects to database rows and back, and of per-PMT arrays.

A histogram becomes three things: a JSON description of its axes, the name of its storage, and its
bin contents (flow bins included) as little-endian binary, plus the variances for weighted storage.
Decoding gives back a histogram equal to the original (same axes, same contents), so merging the
decoded histograms of a run's files gives exactly what merging the originals would.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import hist
import numpy as np
import numpy.typing as npt

from dqm.bytegroups import grouped, ungrouped

if TYPE_CHECKING:
    from boost_histogram.view import WeightedSumView

#: A histogram of any storage (hist's type parameter is the storage): what the codec encodes and
#: decodes, and what the pipeline fills, merges and stores.
AnyHist: TypeAlias = hist.Hist[Any]

#: Storages the codec supports, by name.
STORAGES: dict[str, type[hist.storage.Storage]] = {
    "double": hist.storage.Double,
    "int64": hist.storage.Int64,
    "weight": hist.storage.Weight,
}


@dataclass(frozen=True)
class EncodedHistogram:
    """A histogram as it is stored in the ``histograms`` table."""

    axes: list[dict[str, Any]]
    storage: str
    values: bytes
    variances: bytes | None
    entries: float


def _axis_to_dict(axis: Any) -> dict[str, Any]:
    # The label as set (hist reports the name as label when none was given).
    common = {"name": axis.name, "label": axis.__dict__.get("label", "")}
    traits = axis.traits
    if isinstance(axis, hist.axis.Regular):
        if axis.transform is not None and not isinstance(
            axis.transform, type(hist.axis.transform.log)
        ):
            raise ValueError(f"axis {axis.name!r}: only plain and log Regular axes are supported.")
        return {
            "type": "regular",
            "bins": int(axis.size),
            "start": float(axis.edges[0]),
            "stop": float(axis.edges[-1]),
            "transform": "log" if axis.transform is not None else None,
            "underflow": traits.underflow,
            "overflow": traits.overflow,
            "circular": traits.circular,
            "growth": traits.growth,
            **common,
        }
    if isinstance(axis, hist.axis.Variable):
        return {
            "type": "variable",
            "edges": [float(e) for e in axis.edges],
            "underflow": traits.underflow,
            "overflow": traits.overflow,
            "circular": traits.circular,
            "growth": traits.growth,
            **common,
        }
    if isinstance(axis, hist.axis.Integer):
        return {
            "type": "integer",
            "start": int(axis.edges[0]),
            "stop": int(axis.edges[-1]),
            "underflow": traits.underflow,
            "overflow": traits.overflow,
            "circular": traits.circular,
            "growth": traits.growth,
            **common,
        }
    if isinstance(axis, hist.axis.Boolean):
        return {"type": "boolean", **common}
    if isinstance(axis, hist.axis.StrCategory):
        return {"type": "str_category", "categories": list(axis), "growth": traits.growth, **common}
    if isinstance(axis, hist.axis.IntCategory):
        return {
            "type": "int_category",
            # boost-histogram types the bins of any axis as numbers, strings or intervals alike
            "categories": [int(c) for c in axis],  # type: ignore[arg-type]
            "growth": traits.growth,
            **common,
        }
    raise ValueError(f"axis type {type(axis).__name__} is not supported by the histogram codec.")


def _axis_from_dict(spec: dict[str, Any]) -> Any:
    kind = spec["type"]
    common = {"name": spec.get("name", ""), "label": spec.get("label", "")}
    if kind == "regular":
        transform = hist.axis.transform.log if spec.get("transform") == "log" else None
        return hist.axis.Regular(
            spec["bins"],
            spec["start"],
            spec["stop"],
            transform=transform,
            underflow=spec["underflow"],
            overflow=spec["overflow"],
            circular=spec["circular"],
            growth=spec["growth"],
            **common,
        )
    if kind == "variable":
        return hist.axis.Variable(
            spec["edges"],
            underflow=spec["underflow"],
            overflow=spec["overflow"],
            circular=spec["circular"],
            growth=spec["growth"],
            **common,
        )
    if kind == "integer":
        return hist.axis.Integer(
            spec["start"],
            spec["stop"],
            underflow=spec["underflow"],
            overflow=spec["overflow"],
            circular=spec["circular"],
            growth=spec["growth"],
            **common,
        )
    if kind == "boolean":
        return hist.axis.Boolean(**common)
    if kind == "str_category":
        return hist.axis.StrCategory(spec["categories"], growth=spec["growth"], **common)
    if kind == "int_category":
        return hist.axis.IntCategory(spec["categories"], growth=spec["growth"], **common)
    raise ValueError(f"unknown axis type {kind!r} in a stored histogram.")


def _storage_name(h: AnyHist) -> str:
    for name, storage in STORAGES.items():
        if h.storage_type is storage:
            return name
    raise ValueError(f"histogram storage {h.storage_type.__name__} is not supported by the codec.")


def encode_histogram(h: AnyHist, *, entries: float | None = None) -> EncodedHistogram:
    """Encode a histogram for storage.

    Args:
        h: the histogram (Double, Int64 or Weight storage; Regular, Variable, Integer, Boolean or
            category axes).
        entries: the number of fills; by default the sum of all bins, flow bins included.
    """
    storage = _storage_name(h)
    view = h.view(flow=True)
    if storage == "weight":
        # The view of a Weight storage has the fields value and variance (boost-histogram types
        # the view of a histogram of any storage as a plain array).
        weighted = cast("WeightedSumView", view)
        values = np.ascontiguousarray(weighted["value"], dtype="<f8")
        variances: bytes | None = np.ascontiguousarray(weighted["variance"], dtype="<f8").tobytes()
    else:
        values = np.ascontiguousarray(view, dtype="<i8" if storage == "int64" else "<f8")
        variances = None
    return EncodedHistogram(
        axes=[_axis_to_dict(axis) for axis in h.axes],
        storage=storage,
        values=values.tobytes(),
        variances=variances,
        entries=float(values.sum()) if entries is None else float(entries),
    )


def decode_histogram(
    axes: list[dict[str, Any]], storage: str, values: bytes, variances: bytes | None = None
) -> AnyHist:
    """Rebuild the histogram from its stored form (the inverse of :func:`encode_histogram`)."""
    if storage not in STORAGES:
        raise ValueError(f"unknown histogram storage {storage!r} in a stored histogram.")
    h: AnyHist = hist.Hist(*(_axis_from_dict(spec) for spec in axes), storage=STORAGES[storage]())
    view = h.view(flow=True)
    shape = view.shape
    if storage == "weight":
        weighted = cast("WeightedSumView", view)  # as in encode_histogram
        weighted["value"] = np.frombuffer(values, dtype="<f8").reshape(shape)
        if variances is None:
            raise ValueError("a weighted histogram was stored without its variances.")
        weighted["variance"] = np.frombuffer(variances, dtype="<f8").reshape(shape)
    else:
        dtype = "<i8" if storage == "int64" else "<f8"
        view[...] = np.frombuffer(values, dtype=dtype).reshape(shape)
    return h


#: The first eight bytes of a packed array (:func:`pack_array`). Read as a float64 they are a NaN
#: with a payload no computation gives, so no plain array starts with them.
PACKED = b"DQMpk\x01\xf8\x7f"


def array_to_bytes(array: npt.ArrayLike) -> bytes:
    """A per-PMT array as little-endian float64 bytes (a database reads one value of them by its
    offset: the calibration constants)."""
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def pack_array(array: npt.ArrayLike) -> bytes:
    """A per-PMT array, losslessly compressed: :data:`PACKED`, then its little-endian float64
    bytes grouped by significance (all first bytes, then all second bytes, ...) through zlib.
    Counts take about a third of their 8 bytes, sums of measured values about 85 %."""
    return PACKED + zlib.compress(grouped(array, "<f8"), 6)


def array_from_bytes(blob: bytes) -> npt.NDArray[np.float64]:
    """The array of :func:`array_to_bytes` or :func:`pack_array` bytes (a new, writable float64
    array).

    Raises:
        ValueError: packed bytes that are damaged.
    """
    blob = bytes(blob)
    if blob.startswith(PACKED):
        try:
            return ungrouped(zlib.decompress(blob[len(PACKED) :]), "<f8")
        except (zlib.error, ValueError) as exc:
            raise ValueError(f"a packed per-PMT array is damaged: {exc}.") from None
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)
