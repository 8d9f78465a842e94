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
the pool's: max_queue decoder rows waiting in all loops together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Sequence

from engine.sessions import Runner
from service.admission import RetryAdvisor
from service.errors import QueueFull
from service.handle import DecodeRequest, RequestHandle
from service.observer import NullObserver, SchedulerObserver
from service.scheduler import Scheduler, SchedulerConfig


class SchedulerPool:
    def __init__(self, runner: Runner, config: SchedulerConfig, threads: int, observer=None):
        if threads < 1:
            raise ValueError(f"decode threads must be >= 1, got {threads}")
        self.config = config
        shared: SchedulerObserver = observer or NullObserver()
        occupancy = _SummedOccupancy(shared, threads)
        # The pool holds the queue bound; a loop refuses nothing the pool admitted.
        unbounded = dataclasses.replace(config, max_queue=sys.maxsize)
        self.schedulers = [
            Scheduler(runner, unbounded, _LoopObserver(shared, occupancy, i)) for i in range(threads)
        ]
        self.retry = RetryAdvisor(config.retry)
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

    @property
    def queued_rows(self) -> int:
        return sum(s.queued_rows for s in self.schedulers)

    def submit(self, request: DecodeRequest) -> RequestHandle:
        return self.submit_all([request])[0]

    def submit_all(self, requests: Sequence[DecodeRequest]) -> list[RequestHandle]:
        """Queue a call's requests, each on the loop with the least work, or none of them.
        Raises as Scheduler.submit_all does; the queue bound is the pool's."""
        if self._draining:  # let the scheduler count and raise it, as a lone scheduler does
            return self.schedulers[0].submit_all(requests)
        rows, queued = sum(r.beam_size for r in requests), self.queued_rows
        if queued and queued + rows > self.config.max_queue:
            for _ in requests:
                self.schedulers[0].observer.request_rejected("queue_full")
            raise QueueFull(queued, self.config.max_queue, self.retry.refused(1), rows)
        handles: list[RequestHandle] = []
        try:
            for request in requests:
                # Reading another thread's counts without its lock is a heuristic; it only picks a loop.
                target = min(self.schedulers, key=lambda s: s.queued_rows + s.running_requests)
                handles.extend(target.submit_all([request]))
        except BaseException:
            for handle in handles:  # invalid part-way: none of the call is decoded
                handle.cancel()
            raise
        self.retry.admitted(1, (queued + rows) / self.config.max_queue)
        return handles


class _SummedOccupancy:
    """Each loop reports its own occupancy; the gauges show the pool's total."""

    def __init__(self, observer: SchedulerObserver, loops: int):
        self._observer = observer
        self._lock = threading.Lock()
        self._per_loop = [(0, 0, 0, 0)] * loops

    def report(self, loop: int, *counts: int) -> None:
        with self._lock:
            self._per_loop[loop] = counts
            totals = [sum(column) for column in zip(*self._per_loop, strict=True)]
        self._observer.occupancy(*totals)


class _LoopObserver:
    """One loop's observer: everything passes through except occupancy, which is summed."""

    def __init__(self, observer: SchedulerObserver, occupancy: _SummedOccupancy, loop: int):
        self._observer, self._occupancy, self._loop = observer, occupancy, loop

    def __getattr__(self, name: str):
        return getattr(self._observer, name)

    def occupancy(self, queued: int, queued_rows: int, running_requests: int, running_rows: int) -> None:
        self._occupancy.report(self._loop, queued, queued_rows, running_requests, running_rows)
