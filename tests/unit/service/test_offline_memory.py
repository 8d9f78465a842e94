"""keep_freed_memory (service/offline_model.py): memory the offline job frees is reused without
page faults. Checked in fresh interpreters, against one that keeps glibc's defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Faults taken by the second of two 32 MiB arrays allocated, filled and freed in turn.
_CODE = """
import resource, sys
import numpy as np
from service.offline_model import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
for i in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(8 << 20, dtype=np.float32)
    a[:] = 1.0
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_array_faults(mode: str) -> int:
    # 4 KiB pages, so the count does not depend on transparent huge pages being on.
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}
    run = subprocess.run([sys.executable, "-c", _CODE, mode], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_freed_array_is_reused_without_faulting_its_pages_in_again() -> None:
    pages = (32 << 20) // 4096
    assert _second_array_faults("defaults") > pages // 2  # glibc mmaps it afresh: every page faults
    assert _second_array_faults("keep") < pages // 20  # the freed heap is reused
