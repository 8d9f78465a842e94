"""glibc's allocator, set for the decode batch's arrays (call once, early, in a process that decodes).

A batch's encoder arrays are hundreds of KiB (64 rows x 22 source positions x 128 float32 is
540 KiB on the dates model) and every join and filter copies them into new ones. At glibc's
defaults (mmap threshold 128 KiB, raised only to sizes it has seen freed; trim threshold twice
that) such copies keep landing on fresh pages that the kernel must fault in and zero: a filter
and join of 64 dates rows took 2.4 ms, against 0.26 ms with the values below (docs/performance.md).
The cost: up to TRIM_THRESHOLD of freed memory stays in the process for the next batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 8 << 20  # bytes: an allocation above this gets pages of its own (mmap)
TRIM_THRESHOLD = 16 << 20  # bytes: free memory above this at the heap's top goes back to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
# Set by a user, glibc reads these at start-up; they win over ours.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds; False (and nothing set) off Linux/glibc or where the
    user set either through the environment."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
