"""Numbers' bytes grouped by significance, for compression.

The bytes of an array of numbers in order (all bytes of the first number, then of the second, ...)
compress little with zlib: the low bytes of measured values are noise. Grouped by significance
(the first byte of every number, then the second byte of every number, ...), the exponents and
high bytes, which vary slowly, form long runs that compress well. This is the shuffle filter of
HDF5 and Blosc. Used by the stored per-PMT arrays (:mod:`dqm.histcodec`), the event tables
(:mod:`dqm.eventtable`) and the kept events (:mod:`dqm.keptevents`). NumPy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def grouped(values: npt.ArrayLike, dtype: str) -> bytes:
    """The bytes of ``values`` as ``dtype``, grouped by significance."""
    array = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    return array.view(np.uint8).reshape(-1, array.itemsize).T.tobytes()


def ungrouped(data: bytes, dtype: str) -> np.ndarray:
    """The values of :func:`grouped` bytes (a new, writable array of ``dtype``).

    Raises:
        ValueError: the bytes are not a whole number of values.
    """
    size = np.dtype(dtype).itemsize
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes are not a whole number of {size}-byte values")
    raw = np.frombuffer(data, np.uint8).reshape(size, -1).T.copy()
    return raw.view(dtype).reshape(-1)
