"""Continuous batching: one decode loop steps every running request's rows together.

Requests wait in a bounded FIFO queue. Before each decoder step the loop drops the rows of
cancelled and expired requests, admits waiting requests while there is room (oldest first, so a
long request never starves short ones and nobody waits more than one step once there is room),
encodes the newcomers in one encoder run and concatenates them into the batch. The step itself is
the engine's (engine/step.py, the one shared with the per-request decoder): it advances each
request's `s2s.search.BeamSearch` and keeps the surviving rows; finished requests leave at once.

The decode loop runs in a thread of its own, which owns the batch, the searches and the ONNX
Runtime calls (they release the GIL), so the event loop never blocks on them and a step costs no
thread hand-off. What clients see (token events, results, errors) is handed to the event loop once
per step with call_soon_threadsafe; handles are touched only there. The scheduler knows nothing of
gRPC (docs/design.md, "The scheduler interface").
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.batch import DecodeBatch
from engine.decoding import Decoding
from engine.events import Failed, Finished
from engine.sessions import Runner
from engine.step import encode, step
from s2s.search import BeamSearch
from service.admission import RetryAdvisor
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    QueueFull,
    StepFailed,
)
from service.handle import DecodeRequest, RequestHandle, Result, TokenEvent
from service.observer import NullObserver, SchedulerObserver
from service.scheduler_config import SchedulerConfig, refuse_unless_valid

__all__ = ["DecodeRequest", "RequestHandle", "Result", "Scheduler", "SchedulerConfig", "TokenEvent"]

log = logging.getLogger(__name__)


Delivery = tuple[RequestHandle, "TokenEvent | Result | BaseException"]


@dataclass(eq=False, kw_only=True)
class Running(Decoding):
    """A request in the running batch: the engine's decoding state plus whose it is."""

    handle: RequestHandle
    started: float  # when it joined the batch (time.monotonic)

    @property
    def cancelled(self) -> bool:
        return self.handle.cancel_requested

    @classmethod
    def start(cls, handle: RequestHandle, eos_id: int, now: float) -> Running:
        r = handle.request
        search = BeamSearch(r.beam_size, r.n_best, r.max_len, r.length_penalty, r.want_attention, eos_id)
        return cls(search=search, src_len=len(r.src_ids), stream=r.stream, handle=handle, started=now)


class Scheduler:
    def __init__(self, runner: Runner, config: SchedulerConfig = SchedulerConfig(), observer=None):
        self.runner = runner
        self.config = config
        self.observer: SchedulerObserver = observer or NullObserver()
        self._keys = itertools.count()
        self._cv = threading.Condition()  # guards _waiting and _abort; wakes the decode thread
        self._waiting: collections.deque[RequestHandle] = collections.deque()
        self._waiting_rows = 0  # sum of beam_size over _waiting
        self.retry = RetryAdvisor(config.retry)  # event loop only
        self._abort = False  # the decode thread fails what is left with Draining and exits
        self._draining = False
        self._live: set[RequestHandle] = set()  # event loop's view: submitted, not yet answered
        # Owned by the decode thread:
        self._running: dict[int, Running] = {}  # key -> state, for the rows in self._batch
        self._batch: DecodeBatch | None = None
        self._out: list[Delivery] = []  # for the event loop at the end of this iteration
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle (event loop) ------------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._decode_thread, name="s2s-decode", daemon=True)
        self._thread.start()

    async def stop(self, grace: float = 0.0) -> None:
        """Take no new work; let accepted requests finish for up to `grace` seconds, then fail
        the rest with Draining and stop the decode thread."""
        self._draining = True
        deadline = time.monotonic() + grace
        while self._live and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for handle in list(self._live):  # answer now, even while a step is still running
            handle._finish(Draining("server is shutting down"))
        self._live.clear()
        with self._cv:
            self._abort = True
            self._cv.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)  # a step still running finishes first
            self._thread = None
        await asyncio.sleep(0)  # let the last deliveries run

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def running_requests(self) -> int:
        return len(self._running)

    # -- submitting (event loop) -----------------------------------------------------------------
    @property
    def queued_rows(self) -> int:
        return self._waiting_rows

    def submit(self, request: DecodeRequest) -> RequestHandle:
        """Queue `request`. Raises at once: Draining, InvalidRequest, QueueFull."""
        return self.submit_all([request])[0]

    def submit_all(self, requests: Sequence[DecodeRequest]) -> list[RequestHandle]:
        """Queue every request of one call, or none of them: a call refused part-way would have
        cost the rows of its admitted part for nothing. Raises at once: Draining,
        InvalidRequest, QueueFull (with the turn the caller should retry at)."""
        refuse_unless_valid(self.config, self.observer, self._draining, requests)
        rows = sum(r.beam_size for r in requests)
        with self._cv:
            queued = self._waiting_rows
            if queued and queued + rows > self.config.max_queue:
                for _ in requests:
                    self.observer.request_rejected("queue_full")
                raise QueueFull(queued, self.config.max_queue, self.retry.refused(1), rows)
            handles = [RequestHandle(r, next(self._keys), _on_cancel=self._cancel) for r in requests]
            self._waiting.extend(handles)
            self._waiting_rows += rows
            self._cv.notify()
        self.retry.admitted(1, (queued + rows) / self.config.max_queue)
        self._live.update(handles)
        for r in requests:
            self.observer.request_queued(len(r.src_ids))
        return handles

    def _cancel(self, handle: RequestHandle) -> None:
        # Answer at once; the decode thread sees cancel_requested and drops the rows before its
        # next step (or the request before it ever starts).
        with self._cv:
            waiting = handle in self._waiting
            if waiting:
                self._waiting.remove(handle)
                self._waiting_rows -= handle.request.beam_size
        handle._finish(Cancelled("the client cancelled the request"))
        self._live.discard(handle)
        if waiting:
            now = time.monotonic()
            self.observer.request_finished(gone_reason(handle, now), now - handle.submitted, 0)

    def _deliver(self, deliveries: list[Delivery]) -> None:
        for handle, item in deliveries:
            if isinstance(item, TokenEvent):
                handle._emit(item)
            else:
                handle._finish(item)
                self._live.discard(handle)

    # -- the decode thread -----------------------------------------------------------------------
    def _decode_thread(self) -> None:
        while True:
            with self._cv:
                self._wait_for_work()
                if self._abort:
                    break
                if not self._running and self.config.max_batch_wait_ms > 0:
                    self._wait_to_fill()
                newcomers = self._admit(time.monotonic())
            try:
                self._iteration(newcomers)
            except Exception:  # noqa: BLE001 - a failing step must not kill the server
                # Logged once, here, with the cause; clients get INTERNAL with no internals.
                log.exception("decode step failed; failing its %d requests", len(self._running))
                for state in self._running.values():
                    self._out.append((state.handle, StepFailed()))
                    self.observer.request_finished("error", time.monotonic() - state.handle.submitted, 0)
                self._running.clear()
                self._batch = None
            self._flush()
        with self._cv:
            left = [*self._waiting, *(s.handle for s in self._running.values())]
            self._waiting.clear()
            self._waiting_rows = 0
        for handle in left:
            self._out.append((handle, Draining("server is shutting down")))
            self.observer.request_finished("cancelled", time.monotonic() - handle.submitted, 0)
        self._running.clear()
        self._batch = None
        self._flush()

    def _flush(self) -> None:
        if not self._out:
            return
        deliveries, self._out = self._out, []
        try:
            self._loop.call_soon_threadsafe(self._deliver, deliveries)
        except RuntimeError:  # the event loop is closed: nobody is left to tell
            pass

    def _wait_for_work(self) -> None:
        """(lock held) Until there is something to decode or the loop must stop."""
        while not (self._waiting or self._running or self._abort):
            self._cv.wait()

    def _wait_for_input(self, timeout: float) -> bool:
        """(lock held) Up to `timeout` seconds for more requests; False if none came."""
        return self._cv.wait(timeout)

    def _wait_to_fill(self) -> None:
        """Idle and asked to wait (lock held): give more requests max_batch_wait_ms to arrive."""
        deadline = time.monotonic() + self.config.max_batch_wait_ms / 1000
        while len(self._waiting) < self.config.max_rows and not self._abort:
            left = deadline - time.monotonic()
            if left <= 0 or not self._wait_for_input(left):
                break

    def _admit(self, now: float) -> list[RequestHandle]:
        """(lock held) Drop expired waiting requests; take the oldest that fit in the rows left
        (a request reserves beam_size rows)."""
        for handle in [
            h for h in self._waiting if h.request.deadline is not None and now >= h.request.deadline
        ]:
            self._waiting.remove(handle)
            self._waiting_rows -= handle.request.beam_size
            self._out.append((handle, DeadlineExceeded("deadline passed while queued")))
            self.observer.request_finished("deadline", now - handle.submitted, 0)
        room = self.config.max_rows - sum(s.search.beam_size for s in self._running.values())
        if not self._joins_now(room, now):
            return []
        cap = self.config.max_requests
        slots = cap - len(self._running) if cap else len(self._waiting)
        admitted = []
        while self._waiting and self._waiting[0].request.beam_size <= room and len(admitted) < slots:
            handle = self._waiting.popleft()
            self._waiting_rows -= handle.request.beam_size
            room -= handle.request.beam_size
            admitted.append(handle)
        return admitted

    def _joins_now(self, room: int, now: float) -> bool:
        """(lock held) Whether the waiting requests join at this step (SchedulerConfig.admit_min_rows):
        at once while the batch is at most half full, else in groups."""
        c = self.config
        if not self._waiting or 2 * (c.max_rows - room) <= c.max_rows:
            return True
        if self._waiting_rows >= min(c.admit_min_rows, c.max_queue):  # more can never wait
            return True
        return now - self._waiting[0].submitted >= c.admit_max_wait_ms / 1000

    def _iteration(self, newcomers: list[RequestHandle]) -> None:
        """Drop gone rows, encode newcomers, run one step, advance every search."""
        now = time.monotonic()
        self._drop_gone_rows(now)
        for handle in newcomers:
            self._running[handle.key] = Running.start(handle, self.runner.graphs.eos_id, now)
            self.observer.request_started(now - handle.submitted)
        if newcomers:
            part = self._encode(newcomers)
            self._batch = DecodeBatch.concatenate([b for b in (self._batch, part) if b is not None])
        if self._batch is None:  # every row left (cancelled, expired): the gauges must say so
            self.observer.occupancy(len(self._waiting), self._waiting_rows, len(self._running), 0)
            return
        outcome = step(self.runner, self._batch, self._running)
        self.observer.decoder_step(outcome.timings.rows, outcome.timings.decoder_s)
        now = time.monotonic()
        for key in outcome.gone:
            self._drop(key, gone_reason(self._running[key].handle, now), now)
        left = {key for key, event in outcome.events if isinstance(event, Failed)}.union(outcome.gone)
        for handle in newcomers:  # each took its first step, unless it left without one
            if handle.key not in left:
                self.observer.first_token(now - handle.submitted)
        for key, event in outcome.events:
            state = self._running[key]
            if isinstance(event, TokenEvent):
                self._out.append((state.handle, event))
            elif isinstance(event, Finished):
                self._finish(state, event, now)
            else:
                assert isinstance(event, Failed), f"unknown engine event {event!r}"
                self._out.append((state.handle, StepFailed()))
                self._drop(key, "error", now)
        self._batch = outcome.batch
        rows = len(self._batch) if self._batch is not None else 0
        self.observer.occupancy(len(self._waiting), self._waiting_rows, len(self._running), rows)

    def _finish(self, state: Running, event: Finished, now: float) -> None:
        handle = self._running.pop(state.handle.key).handle
        best = event.hypotheses[0]
        result = Result(
            event.hypotheses, state.started - handle.submitted, now - handle.submitted, event.steps
        )
        self._out.append((handle, result))
        self.observer.request_finished(best.finish_reason, now - handle.submitted, len(best.tokens))

    def _drop(self, key: int, reason: str, now: float) -> None:
        state = self._running.pop(key)
        self.observer.request_finished(reason, now - state.handle.submitted, state.search.length)

    def _drop_gone_rows(self, now: float) -> None:
        """Remove the rows of cancelled and expired requests."""
        gone = []
        for key, state in list(self._running.items()):
            deadline = state.handle.request.deadline
            if state.handle.cancel_requested:
                self._drop(key, gone_reason(state.handle, now), now)
            elif deadline is not None and now >= deadline:
                self._out.append((state.handle, DeadlineExceeded("deadline passed while decoding")))
                self._drop(key, "deadline", now)
            else:
                continue
            gone.append(key)
        if gone and self._batch is not None:
            keep = np.flatnonzero(np.isin(self._batch.row_owner, gone, invert=True))
            self._batch = self._batch.select(keep)

    def _encode(self, handles: list[RequestHandle]) -> DecodeBatch:
        """One encoder run over the newcomers, padded to the longest source."""
        keys = [h.key for h in handles]
        batch, seconds = encode(self.runner, keys, [h.request.src_ids for h in handles])
        self.observer.encoder_run(len(handles), seconds)
        return batch


def gone_reason(handle: RequestHandle, now: float) -> str:
    """Why a cancelled request left: gRPC cancels a call whose deadline fired in its core too
    (the servicer says so), and its clock and ours may differ by a millisecond either way."""
    deadline = handle.request.deadline
    return "deadline" if handle.deadline_passed or (deadline is not None and now >= deadline) else "cancelled"
