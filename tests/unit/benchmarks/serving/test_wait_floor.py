"""benchmarks/serving/wait_floor.py's pause probe: the work runs after each pause, and only the
work is timed (bounds, not timings)."""

from __future__ import annotations

import time

from benchmarks.serving.wait_floor import measure_after_pause


def test_the_work_is_timed_without_the_pause_before_it() -> None:
    started = time.perf_counter()
    work_us = measure_after_pause(20.0, calls=10)  # 12 pauses of 20 ms, the first two warm up
    assert time.perf_counter() - started >= 12 * 0.020
    assert 0 < work_us < 20_000  # the pause itself is not in it
