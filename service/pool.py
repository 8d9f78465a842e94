"""Several decode loops over one model's sessions, behind the Scheduler's interface.

Two uses, both from `s2s serve --decode-threads N`:
- With `--max-requests 1` each loop decodes one request at a time: the common way to serve a
  seq2seq model (a pool of workers, one request each). It is kept as a switch so the worth of
  cross-request batching is measured on the same server, over the same gRPC path
  (`s2s bench --variants server-per-request`).
- With batching on, two loops let one loop's Python bookkeeping run while the other's ONNX Runtime
  step holds the cores.

ONNX Runtime sessions may be run from several threads at once, so the loops share one Runner.
Each loop keeps its own batch; a request goes to the loop with the least work. The queue bound is
the pool's: max_queue requests waiting in all loops together.
"""

from __future__ import annotations

import asyncio
import threading

from service.errors import QueueFull
from service.handle import DecodeRequest, RequestHandle
from service.observer import NullObserver, SchedulerObserver
from service.runner import Runner
from service.scheduler import Scheduler, SchedulerConfig


class SchedulerPool:
    def __init__(self, runner: Runner, config: SchedulerConfig, threads: int, observer=None):
        if threads < 1:
            raise ValueError(f"decode threads must be >= 1, got {threads}")
        self.config = config
        shared: SchedulerObserver = observer or NullObserver()
        occupancy = _SummedOccupancy(shared, threads)
        self.schedulers = [
            Scheduler(runner, config, _LoopObserver(shared, occupancy, i)) for i in range(threads)
        ]
        self._draining = False

    async def start(self) -> None:
        for scheduler in self.schedulers:
            await scheduler.start()

    async def stop(self, grace: float = 0.0) -> None:
        self._draining = True
        await asyncio.gather(*(s.stop(grace) for s in self.schedulers))

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def queued(self) -> int:
        return sum(s.queued for s in self.schedulers)

    @property
    def running_requests(self) -> int:
        return sum(s.running_requests for s in self.schedulers)

    def submit(self, request: DecodeRequest) -> RequestHandle:
        """Queue `request` on the loop with the least work. Raises as Scheduler.submit does."""
        if self._draining:  # let the scheduler count and raise it, as a lone scheduler does
            return self.schedulers[0].submit(request)
        if self.queued >= self.config.max_queue:
            self.schedulers[0].observer.request_rejected("queue_full")
            raise QueueFull(self.queued, self.config.max_queue, self.config.retry_after_s)
        # Reading another thread's counts without its lock is a heuristic; it only picks a loop.
        target = min(self.schedulers, key=lambda s: s.queued + s.running_requests)
        return target.submit(request)


class _SummedOccupancy:
    """Each loop reports its own occupancy; the gauges show the pool's total."""

    def __init__(self, observer: SchedulerObserver, loops: int):
        self._observer = observer
        self._lock = threading.Lock()
        self._per_loop = [(0, 0, 0)] * loops

    def report(self, loop: int, queued: int, running_requests: int, running_rows: int) -> None:
        with self._lock:
            self._per_loop[loop] = (queued, running_requests, running_rows)
            totals = [sum(column) for column in zip(*self._per_loop, strict=True)]
        self._observer.occupancy(*totals)


class _LoopObserver:
    """One loop's observer: everything passes through except occupancy, which is summed."""

    def __init__(self, observer: SchedulerObserver, occupancy: _SummedOccupancy, loop: int):
        self._observer, self._occupancy, self._loop = observer, occupancy, loop

    def __getattr__(self, name: str):
        return getattr(self._observer, name)

    def occupancy(self, queued: int, running_requests: int, running_rows: int) -> None:
        self._occupancy.report(self._loop, queued, running_requests, running_rows)
