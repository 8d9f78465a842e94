"""The ONNX Runtime CPU meter of the in-process benchmark variant, on a real runner: it must see
the calling thread's time inside encode/step and the sessions' own pool threads."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from benchmarks.serving.ort_cpu import OrtCpuMeter
from engine.batch import DecodeBatch
from engine.sessions import Runner, RunnerConfig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_meter_counts_the_calls_and_the_pool_threads_the_sessions_started(bundle):
    meter = OrtCpuMeter(lambda: Runner.from_bundle(bundle, RunnerConfig(intra_op_threads=2)))
    runner = meter.runner
    assert meter._pool_threads, "two intra-op threads per session: ONNX Runtime starts a pool thread"
    calls_before = meter._in_calls_s
    pool_before = meter.seconds() - calls_before
    src = np.full((64, 20), 4, dtype=np.int64)
    lengths = np.full((64,), 20, dtype=np.int64)
    deadline = time.monotonic() + 10
    # /proc counts in clock ticks (10 ms): run until the pool threads have some, or give up.
    while meter.seconds() - meter._in_calls_s == pool_before and time.monotonic() < deadline:
        enc = runner.encode(src, lengths)
        batch = DecodeBatch.build(list(range(64)), enc.memory, enc.keys, lengths, enc.init_state, 1)
        runner.step(batch, k=4)
    assert meter._in_calls_s > calls_before  # the wrapped calls were timed in this thread
    assert meter.seconds() - meter._in_calls_s > pool_before  # and the pool's CPU is added
