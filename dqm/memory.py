"""Giving freed memory back to the system (glibc), for long-lived processes.

glibc keeps freed heap memory for reuse; a process that once held much (a worker that processed a
large file, a server that served many sessions) looks as if it still did. :func:`trim` gives it back;
:func:`reusing_freed_memory` instead keeps it for reuse within a block of repeated large allocations.
Without glibc both do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator
from typing import Any

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DEFAULT_TRIM_THRESHOLD = 128 * 2**10


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


def trim() -> None:
    """Give the heap memory that is free back to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def reusing_freed_memory(trim_after: bool = True) -> Iterator[None]:
    """Within the block, glibc's allocator keeps freed memory for reuse; at its end
    (``trim_after``), what is free is given back to the system.

    Processing allocates arrays of tens of MB for every chunk of events; by default glibc maps each
    afresh and unmaps it when freed, so every chunk pays for zeroed pages from the kernel again — a
    large share of the processing time on virtual machines. With a fixed mapping threshold (32 MB,
    glibc's largest) and no trimming, the chunks reuse the same memory. Trimming at the end of a job
    brings the process back to its size before (loky restarts workers that grow by 300 MB between
    jobs); ranges run as joblib tasks keep it, for the next range of the same file.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        if libc is not None and trim_after:
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
