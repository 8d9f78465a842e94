"""How much of the in-process scheduler's CPU is ONNX Runtime's own work (Linux /proc).

The budget in docs/performance.md needs the model's share of a request apart from everything
around it: a scheduler whose Python cost nothing would still pay this, on top of what gRPC costs.
It is the CPU the calling thread spends inside the runner's encode and step calls, plus the CPU
of the intra-op pool threads that the runner's sessions started.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from engine.sessions import Runner


def _thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def proc_cpu_s(stat_path: str) -> float:
    """User + system CPU seconds from a /proc .../stat file (a process or one of its threads)."""
    with open(stat_path, encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _thread_cpu_s(tid: int) -> float:
    try:
        return proc_cpu_s(f"/proc/self/task/{tid}/stat")
    except OSError:  # the thread has ended: its time is no longer counted anywhere
        return 0.0


class OrtCpuMeter:
    """Builds a runner with `make_runner` and counts ONNX Runtime's CPU in it from then on."""

    def __init__(self, make_runner: Callable[[], Runner]) -> None:
        before = _thread_ids()
        self.runner = make_runner()
        self._pool_threads = _thread_ids() - before  # started by the sessions: intra-op pools
        self._in_calls_s = 0.0  # the calling (decode) thread's CPU inside encode and step
        self.runner.encode = self._timed(self.runner.encode)
        self.runner.step = self._timed(self.runner.step)

    def _timed(self, call: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                self._in_calls_s += time.thread_time() - started

        return timed

    def seconds(self) -> float:
        """ONNX Runtime CPU seconds so far (warm-up included: take differences)."""
        return self._in_calls_s + sum(_thread_cpu_s(tid) for tid in self._pool_threads)
