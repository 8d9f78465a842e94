"""engine/allocator.py: glibc keeps a batch-sized allocation on its heap once tuned.

Each case runs in a fresh interpreter (glibc's thresholds are per process and move as it frees
memory) and counts glibc's mmapped chunks (mallinfo2().hblks) around a 4 MiB malloc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="glibc's allocator only")

_PROBE = """
import ctypes, ctypes.util, json, sys
from engine.allocator import tune_allocator
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
tuned = tune_allocator() if sys.argv[1] == "tune" else None
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(json.dumps({"tuned": tuned, "mmapped": libc.mallinfo2().hblks - before}))
"""


def _probe(mode: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env=environment, cwd=os.getcwd())  # fmt: skip
    return json.loads(out.stdout)


def test_untuned_glibc_maps_a_batch_sized_block_of_its_own():
    assert _probe("plain")["mmapped"] == 1  # what the tuning removes, or the test below means nothing


def test_tuned_glibc_keeps_it_on_the_heap():
    assert _probe("tune") == {"tuned": True, "mmapped": 0}


def test_a_users_malloc_settings_win():
    assert _probe("tune", MALLOC_TRIM_THRESHOLD_="131072") == {"tuned": False, "mmapped": 1}
