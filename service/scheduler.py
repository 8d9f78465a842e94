"""Continuous batching: one decode loop steps every running request's rows together.

Requests wait in a bounded FIFO queue. Before each decoder step the loop drops the rows of
cancelled and expired requests, admits waiting requests while there is room (oldest first, so a
long request never starves short ones and nobody waits more than one step once there is room),
encodes the newcomers in one encoder run and concatenates them into the batch. After the step each
request's `s2s.search.BeamSearch` picks its surviving rows; finished requests leave at once.

ONNX Runtime runs in one worker thread (it releases the GIL), so the event loop never blocks on
it; all bookkeeping stays on the event loop, where handles and the queue live. The scheduler
knows nothing of gRPC (docs/design.md, "The scheduler interface").
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from s2s.search import BeamSearch
from service.batch import DecodeBatch
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    FieldViolation,
    InvalidRequest,
    QueueFull,
    ServiceError,
)
from service.handle import DecodeRequest, RequestHandle, Result, TokenEvent
from service.observer import NullObserver, SchedulerObserver
from service.runner import Runner, StepOutput

__all__ = ["DecodeRequest", "RequestHandle", "Result", "Scheduler", "SchedulerConfig", "TokenEvent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerConfig:
    max_rows: int = 64  # decoder rows per step across requests (a beam request holds beam_size)
    max_queue: int = 256  # requests waiting to join; submit() raises QueueFull beyond it
    max_batch_wait_ms: float = 0.0  # when idle, wait this long for more requests before starting
    max_beam: int = 16  # per-request limits, checked again at submit (the servicer checks first)
    max_src_tokens: int = 256
    max_output_len: int = 512
    retry_after_s: float = 0.1  # hint sent with QueueFull

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_queue < 1 or self.max_batch_wait_ms < 0:
            raise ValueError(
                f"need max_rows >= 1, max_queue >= 1, max_batch_wait_ms >= 0; got {self.max_rows}, "
                f"{self.max_queue}, {self.max_batch_wait_ms}"
            )
        if self.max_beam > self.max_rows:
            raise ValueError(f"max_beam ({self.max_beam}) cannot exceed max_rows ({self.max_rows})")


@dataclass(eq=False)
class _Running:
    handle: RequestHandle
    search: BeamSearch
    src_len: int
    started: float  # when it joined the batch
    streamed: int = 0  # output tokens already sent as TokenEvents
    steps: int = 0


class Scheduler:
    def __init__(self, runner: Runner, config: SchedulerConfig = SchedulerConfig(), observer=None):
        self.runner = runner
        self.config = config
        self.observer: SchedulerObserver = observer or NullObserver()
        self._keys = itertools.count()
        self._waiting: collections.deque[RequestHandle] = collections.deque()
        self._running: dict[int, _Running] = {}  # key -> state, for rows in self._batch
        self._batch: DecodeBatch | None = None
        self._wake = asyncio.Event()
        self._draining = False
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("scheduler already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2s-decode")
        self._task = asyncio.create_task(self._loop(), name="s2s-decode-loop")

    async def stop(self, grace: float = 0.0) -> None:
        """Take no new work; let accepted requests finish for up to `grace` seconds, then fail
        the rest with Draining and stop the loop."""
        self._draining = True
        deadline = time.monotonic() + grace
        while (self._waiting or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for handle in list(self._waiting):
            self._fail(handle, Draining("server is shutting down"), "cancelled")
        self._waiting.clear()
        for state in list(self._running.values()):
            self._fail(state.handle, Draining("server is shutting down"), "cancelled")
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._executor is not None:  # waits for a step still running, off the event loop
            await asyncio.to_thread(self._executor.shutdown, True)
            self._executor = None
        self._running.clear()
        self._batch = None

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def running_requests(self) -> int:
        return len(self._running)

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, request: DecodeRequest) -> RequestHandle:
        """Queue `request`. Raises at once: Draining, QueueFull, InvalidRequest."""
        if self._draining:
            self.observer.request_rejected("draining")
            raise Draining("server is shutting down; retry on another replica")
        bad = self._violations(request)
        if bad:
            self.observer.request_rejected("invalid")
            raise InvalidRequest(bad)
        if len(self._waiting) >= self.config.max_queue:
            self.observer.request_rejected("queue_full")
            raise QueueFull(len(self._waiting), self.config.max_queue, self.config.retry_after_s)
        handle = RequestHandle(request, next(self._keys), _on_cancel=self._cancel)
        self._waiting.append(handle)
        self.observer.request_queued(len(request.src_ids))
        self._wake.set()
        return handle

    def _violations(self, r: DecodeRequest) -> list[FieldViolation]:
        c, bad = self.config, []
        if not 1 <= len(r.src_ids) <= c.max_src_tokens:
            bad.append(FieldViolation("src_ids", f"need 1..{c.max_src_tokens} tokens, got {len(r.src_ids)}"))
        if not 1 <= r.beam_size <= c.max_beam:
            bad.append(FieldViolation("beam_size", f"must be 1..{c.max_beam}, got {r.beam_size}"))
        elif not 1 <= r.n_best <= r.beam_size:
            bad.append(FieldViolation("n_best", f"must be 1..beam_size ({r.beam_size}), got {r.n_best}"))
        if not 1 <= r.max_len <= c.max_output_len:
            bad.append(FieldViolation("max_len", f"must be 1..{c.max_output_len}, got {r.max_len}"))
        if not r.length_penalty >= 0:
            bad.append(FieldViolation("length_penalty", f"must be >= 0, got {r.length_penalty}"))
        return bad

    def _cancel(self, handle: RequestHandle) -> None:
        # Waiting: leave the queue now. Running: answer now; the rows go before the next step.
        if handle in self._waiting:
            self._waiting.remove(handle)
        self._fail(handle, Cancelled("the client cancelled the request"), "cancelled")
        self._wake.set()

    def _fail(self, handle: RequestHandle, error: ServiceError, reason: str) -> None:
        if handle.done:
            return
        state = self._running.get(handle.key)
        tokens = state.search.length if state else 0
        handle._finish(error)
        self.observer.request_finished(reason, time.monotonic() - handle.submitted, tokens)

    # -- the decode loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._running and self.config.max_batch_wait_ms > 0:
                await self._wait_to_fill()
            try:
                await self._iteration(loop)
            except Exception as exc:  # noqa: BLE001 - a failing step must not kill the server
                log.exception("decode step failed; failing %d requests", len(self._running))
                for state in self._running.values():
                    state.handle._finish(exc)
                    self.observer.request_finished("error", time.monotonic() - state.handle.submitted, 0)
                self._running.clear()
                self._batch = None

    async def _iteration(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop gone rows, admit and encode newcomers, run one step, advance every search."""
        self._drop_gone_rows(time.monotonic())
        newcomers = self._admit()
        if newcomers:
            part = await loop.run_in_executor(self._executor, self._encode, newcomers)
            self._batch = DecodeBatch.concatenate([b for b in (self._batch, part) if b is not None])
        if self._batch is None:
            return
        batch = self._batch
        k = max(s.search.k for s in self._running.values())
        output = await loop.run_in_executor(self._executor, self.runner.step, batch, k)
        self.observer.decoder_step(len(batch), output.seconds)
        self._batch = self._advance(batch, output)
        rows = len(self._batch) if self._batch is not None else 0
        self.observer.occupancy(len(self._waiting), len(self._running), rows)

    async def _wait_to_fill(self) -> None:
        """Idle and asked to wait: give more requests up to max_batch_wait_ms to arrive."""
        deadline = time.monotonic() + self.config.max_batch_wait_ms / 1000
        while len(self._waiting) < self.config.max_rows and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break

    def _drop_gone_rows(self, now: float) -> None:
        """Fail expired requests and remove rows of requests that are no longer running."""
        for handle in [h for h in self._waiting if h.request.deadline is not None and now >= h.request.deadline]:
            self._waiting.remove(handle)
            self._fail(handle, DeadlineExceeded("deadline passed while queued"), "deadline")
        for state in list(self._running.values()):
            deadline = state.handle.request.deadline
            if deadline is not None and now >= deadline:
                self._fail(state.handle, DeadlineExceeded("deadline passed while decoding"), "deadline")
        gone = [key for key, state in self._running.items() if state.handle.done]
        if not gone or self._batch is None:
            return
        for key in gone:
            del self._running[key]
        keep = np.flatnonzero(np.isin(self._batch.row_owner, gone, invert=True))
        self._batch = self._batch.select(keep)

    def _admit(self) -> list[RequestHandle]:
        """Oldest waiting requests that fit in the rows left (a request reserves beam_size rows)."""
        room = self.config.max_rows - sum(s.search.beam_size for s in self._running.values())
        admitted = []
        while self._waiting and self._waiting[0].request.beam_size <= room:
            handle = self._waiting.popleft()
            room -= handle.request.beam_size
            admitted.append(handle)
        now = time.monotonic()
        for handle in admitted:
            r = handle.request
            search = BeamSearch(
                r.beam_size, r.n_best, r.max_len, r.length_penalty, r.want_attention, self.runner.graphs.eos_id
            )
            self._running[handle.key] = _Running(handle, search, len(r.src_ids), now)
            self.observer.request_started(now - handle.submitted)
        return admitted

    def _encode(self, handles: list[RequestHandle]) -> DecodeBatch:
        """Worker thread: one encoder run over the newcomers, padded to the longest source."""
        lengths = np.array([len(h.request.src_ids) for h in handles], dtype=np.int64)
        src = np.zeros((len(handles), int(lengths.max())), dtype=np.int64)  # 0 = <pad>
        for i, h in enumerate(handles):
            src[i, : lengths[i]] = h.request.src_ids
        started = time.perf_counter()
        enc = self.runner.encode(src, lengths)
        self.observer.encoder_run(len(handles), time.perf_counter() - started)
        keys = [h.key for h in handles]
        return DecodeBatch.build(keys, enc.memory, enc.keys, lengths, enc.init_state, self.runner.graphs.bos_id)

    def _advance(self, batch: DecodeBatch, out: StepOutput) -> DecodeBatch | None:
        """Feed each request's candidates to its search; keep the rows that live on."""
        index: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        now = time.monotonic()
        for key, (start, stop) in batch.row_ranges().items():
            state = self._running.get(key)
            if state is None or state.handle.done:  # cancelled while the step ran
                self._running.pop(key, None)
                continue
            try:
                parents = self._advance_request(state, out, start, stop, now)
            except Exception as exc:  # noqa: BLE001 - one request's failure must not end the others
                log.exception("request %d failed", key)
                del self._running[key]
                state.handle._finish(exc)
                self.observer.request_finished("error", now - state.handle.submitted, 0)
                continue
            if parents is None:
                continue
            index.append(start + parents)
            tokens.append(state.search.next_tokens)
        if not index:
            return None
        return batch.with_state(out.state, out.feed).select(np.concatenate(index), np.concatenate(tokens))

    def _advance_request(
        self, state: _Running, out: StepOutput, start: int, stop: int, now: float
    ) -> np.ndarray | None:
        """One request's share of the step: its rows [start, stop). Returns the batch rows (relative
        to start) that live on, or None when the request finished."""
        search = state.search
        attn = out.attn[start:stop, : state.src_len]  # (rows, src_len): drop the batch padding
        parents = search.advance(
            out.topk_log_probs[start:stop, : search.k],
            out.topk_ids[start:stop, : search.k],
            attn if search.keep_attention else None,
        )
        state.steps += 1
        if state.steps == 1:
            self.observer.first_token(now - state.handle.submitted)
        if state.handle.request.stream:
            self._stream(state, out.topk_log_probs[start:stop], attn, parents)
        if search.done:
            self._complete(state, now)
            return None
        return parents

    def _stream(self, state: _Running, top_lps: np.ndarray, attn: np.ndarray, parents: np.ndarray) -> None:
        search, handle = state.search, state.handle
        if search.beam_size == 1:
            if search.done:  # eos or max_len: the result's tail carries what is left
                return
            token = int(search.next_tokens[0])
            attention = attn[:1].copy() if handle.request.want_attention else None
            # Greedy: the surviving token is the row's best non-eos candidate; eos ranked first
            # would have finished the search, so it is candidate 0.
            handle._emit(TokenEvent(state.streamed, [token], [float(top_lps[0, 0])], attention))
            state.streamed += 1
            return
        prefix = search.stable_prefix()
        if len(prefix) > state.streamed:
            handle._emit(TokenEvent(state.streamed, prefix[state.streamed :], None))
            state.streamed = len(prefix)

    def _complete(self, state: _Running, now: float) -> None:
        handle = state.handle
        hypotheses = state.search.results()
        del self._running[handle.key]
        best = hypotheses[0]
        if handle.request.stream and len(best.tokens) > state.streamed:
            tail = slice(state.streamed, None)
            attention = best.attention[tail] if best.attention is not None else None
            handle._emit(TokenEvent(state.streamed, best.tokens[tail], best.token_log_probs[tail], attention))
        handle._finish(Result(hypotheses, state.started - handle.submitted, now - handle.submitted, state.steps))
        self.observer.request_finished(best.finish_reason, now - handle.submitted, len(best.tokens))
