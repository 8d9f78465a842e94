"""The Scheduler's interface, with its decode loop in a process of its own (`s2s serve --engine
process`; service/engine_worker.py is the other end of the pipe).

What stays here, on the event loop: validation, the queue bound and its RetryInfo, the handles
that clients await, cancellation's answer, drain, and the metrics (the engine's observer calls
come back with each step and are replayed here). What crosses: tokenised requests one message per
call, a cancel per cancelled request, and one message per decoder step back, read by a thread of
its own so the event loop only hands the items to their handles.

If the engine process dies, every call it held gets UNAVAILABLE (EngineUnavailable; clients
retry), the model reports NOT_SERVING, and a new engine is started; calls made meanwhile get
UNAVAILABLE too. The engine may not outlive the server: it stops at EOF on its pipe.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from engine.sessions import ProviderUnavailable, RunnerConfig
from s2s.bundle import BundleError
from service.admission import RetryAdvisor
from service.engine_worker import send_message, unwire
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    EngineUnavailable,
    QueueFull,
    StepFailed,
)
from service.handle import DecodeRequest, RequestHandle, TokenEvent
from service.observer import NullObserver, SchedulerObserver
from service.scheduler_config import SchedulerConfig, refuse_unless_valid

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # loading and warming up a bundle's sessions in the new process
STOP_TIMEOUT_S = 10.0  # after ("stop",): a step still running finishes first
READ_BATCH = 16  # engine messages handled per wake-up of the event loop
RESTART_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)  # between failed restarts; the last repeats
# The errors an engine sends, by name (service/engine_worker.py, "_wire").
ENGINE_ERRORS = {e.__name__: e for e in (Draining, DeadlineExceeded, StepFailed)}


class EngineStartError(BundleError):
    """The engine process could not load the bundle (the message says why)."""


class ProcessScheduler:
    def __init__(self, bundle_dir: Path, runner_config: RunnerConfig, config: SchedulerConfig,
                 observer: SchedulerObserver | None = None):  # fmt: skip
        self.bundle_dir = Path(bundle_dir)
        self.runner_config = runner_config
        self.config = config
        self.observer: SchedulerObserver = observer or NullObserver()
        self.retry = RetryAdvisor(config.retry)
        self.provider = runner_config.provider  # the engine says which one it got
        self.restarts = 0  # engines started after the first one died
        self.listeners: list[Callable[[], Awaitable[None]]] = []  # told when `serving` changes
        self._keys = itertools.count()
        self._live: dict[int, RequestHandle] = {}  # submitted, not yet answered
        self._unstarted: dict[int, int] = {}  # key -> rows, not yet in the engine's batch
        self._waiting_rows = 0
        self._draining = False
        self._serving = False  # an engine is up and reading
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: subprocess.Popen | None = None
        self._conn = None
        self._generation = 0  # which engine a message or an EOF came from
        self._restarting: asyncio.Task | None = None
        self._outbox: list[tuple] = []  # messages for the engine, sent once per event-loop turn

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Start the engine and wait until it has loaded and warmed up the bundle (blocking: run
        it in a thread). Raises ProviderUnavailable or EngineStartError."""
        # A fresh interpreter (not fork: grpc's threads' locks would be copied mid-use; not
        # multiprocessing's spawn: it re-runs the caller's __main__), joined by a socket pair.
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "service.engine_worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()  # ours alone now: EOF when the engine dies
        conn = Connection(ours.detach())
        try:
            level = logging.getLogger().level
            conn.send(("load", str(self.bundle_dir), self.runner_config, self.config, level))
            if not conn.poll(START_TIMEOUT_S):
                raise EngineStartError(f"engine for {self.bundle_dir}: not loaded in {START_TIMEOUT_S:g}s")
            message = conn.recv()
        except (EOFError, OSError):
            message = ("failed", "bundle", f"the engine for {self.bundle_dir} exited while loading it")
        except BaseException:
            process.kill()
            process.wait()
            conn.close()
            raise
        if message[0] != "ready":
            process.wait(5)
            conn.close()
            if message[1] == "provider":
                raise ProviderUnavailable(message[2])
            raise EngineStartError(message[2])
        self.provider = message[1]
        self._process, self._conn = process, conn
        self._generation += 1

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("scheduler already started")
        self._loop = asyncio.get_running_loop()
        if self._process is None:
            await asyncio.to_thread(self.open)
        self._begin_reading()

    def _begin_reading(self) -> None:
        # Read on the event loop itself: a reader thread would take the GIL from it once per
        # step and wake it with call_soon_threadsafe besides.
        self._serving = True
        self._loop.add_reader(self._conn.fileno(), self._readable, self._conn, self._generation)

    async def stop(self, grace: float = 0.0) -> None:
        """Take no new work; let accepted requests finish for up to `grace` seconds, then fail
        the rest with Draining and stop the engine."""
        self._draining = True
        deadline = time.monotonic() + grace
        while self._live and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self._fail_live(Draining("server is shutting down"))
        if self._restarting is not None:
            self._restarting.cancel()
        self._serving = False
        if self._conn is not None and self._process is not None:
            self._loop.remove_reader(self._conn.fileno())
        await asyncio.to_thread(self._stop_process)
        await asyncio.sleep(0)

    def close(self) -> None:
        """Stop an engine that was opened but never started (blocking)."""
        self._stop_process()

    def _stop_process(self) -> None:
        process, conn = self._process, self._conn
        self._process = None
        if process is None:
            return
        try:
            conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("the engine for %s did not stop in %gs; killing it", self.bundle_dir, STOP_TIMEOUT_S)
            process.kill()
            process.wait()
        conn.close()

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def serving(self) -> bool:
        return self._serving

    @property
    def engine_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def queued(self) -> int:
        return len(self._unstarted)

    @property
    def queued_rows(self) -> int:
        return self._waiting_rows

    @property
    def running_requests(self) -> int:
        return len(self._live) - len(self._unstarted)

    # -- submitting (event loop) ----------------------------------------------------------------
    def submit(self, request: DecodeRequest) -> RequestHandle:
        return self.submit_all([request])[0]

    def submit_all(self, requests: Sequence[DecodeRequest]) -> list[RequestHandle]:
        """As Scheduler.submit_all, and EngineUnavailable while no engine is up."""
        refuse_unless_valid(self.config, self.observer, self._draining, requests)
        if not self._serving:
            raise EngineUnavailable("the decode engine is restarting; retry")
        rows, queued = sum(r.beam_size for r in requests), self._waiting_rows
        if queued and queued + rows > self.config.max_queue:
            for _ in requests:
                self.observer.request_rejected("queue_full")
            raise QueueFull(queued, self.config.max_queue, self.retry.refused(1), rows)
        handles = [RequestHandle(r, next(self._keys), _on_cancel=self._cancel) for r in requests]
        self._post(("submit", [(h.key, h.submitted, h.request.fields()) for h in handles]))
        for handle in handles:
            self._live[handle.key] = handle
            self._unstarted[handle.key] = handle.request.beam_size
            self.observer.request_queued(len(handle.request.src_ids))
        self._waiting_rows += rows
        self.retry.admitted(1, (queued + rows) / self.config.max_queue)
        return handles

    def _cancel(self, handle: RequestHandle) -> None:
        # Answer at once; the engine drops the rows before its next step and counts the request.
        handle._finish(Cancelled("the client cancelled the request"))
        self._forget(handle.key)
        self._post(("cancel", handle.key, handle.deadline_passed))

    def _post(self, message: tuple) -> None:
        # What one turn of the event loop submits and cancels crosses in one message: a message
        # each would wake the engine's reader thread, and take the GIL from its decode loop, as
        # many times.
        self._outbox.append(message)
        if len(self._outbox) == 1:
            self._loop.call_soon(self._send_outbox)

    def _send_outbox(self) -> None:
        messages, self._outbox = self._outbox, []
        if not messages or self._conn is None:
            return
        try:
            send_message(self._conn, ("many", messages))
        except (BrokenPipeError, OSError):
            pass  # the engine is gone: its reader sees EOF and fails these calls with the rest

    def _forget(self, key: int) -> None:
        self._live.pop(key, None)
        self._waiting_rows -= self._unstarted.pop(key, 0)

    # -- what comes back (event loop) -------------------------------------------------------------
    def _readable(self, conn: Connection, generation: int) -> None:
        try:
            for _ in range(READ_BATCH):  # then let the loop run its other callbacks
                if not conn.poll():
                    return
                message = conn.recv()  # the engine writes a message whole: this does not wait
                self._deliver(message, generation)
        except (EOFError, OSError):
            self._loop.remove_reader(conn.fileno())
            if generation == self._generation and self._process is not None:
                conn.close()  # a dead engine's end; a stopping one's is closed by _stop_process
            self._engine_gone(generation)

    def _deliver(self, message, generation: int) -> None:
        if generation != self._generation:
            return  # a dead engine's last words: its calls were answered already
        _, deliveries, admitted, calls = message
        for key in admitted:
            self._waiting_rows -= self._unstarted.pop(key, 0)
        for name, args in calls:
            getattr(self.observer, name)(*args)
        for key, item in deliveries:
            handle = self._live.get(key)
            if handle is None:
                continue  # cancelled here while the engine was still decoding it
            item = unwire(item, ENGINE_ERRORS, StepFailed)
            if isinstance(item, TokenEvent):
                handle._emit(item)
                continue
            handle._finish(item)
            self._forget(key)

    def _engine_gone(self, generation: int) -> None:
        if generation != self._generation or self._process is None:
            return  # stopped on purpose, or an engine already replaced
        code = self._process.poll()
        log.error("the decode engine for %s (pid %s) exited (code %s); failing its %d calls with "
                  "UNAVAILABLE and starting a new one", self.bundle_dir, self._process.pid, code,
                  len(self._live))  # fmt: skip
        self._serving = False
        self._outbox.clear()  # for the engine that died
        self._fail_live(EngineUnavailable("the decode engine stopped; retry"), count=True)
        self._notify()
        self._restarting = asyncio.ensure_future(self._restart())

    def _fail_live(self, error: Exception, count: bool = False) -> None:
        now = time.monotonic()
        for handle in list(self._live.values()):
            handle._finish(error)
            if count:  # the engine that would have counted them is gone
                self.observer.request_finished("error", now - handle.submitted, 0)
        self._live.clear()
        self._unstarted.clear()
        self._waiting_rows = 0

    async def _restart(self) -> None:
        old, self._process = self._process, None
        await asyncio.to_thread(_reap, old)
        for attempt in itertools.count():
            if self._draining:
                return
            try:
                await asyncio.to_thread(self.open)
                break
            except Exception as exc:  # noqa: BLE001 - keep trying: a transient failure must not end serving
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                log.error("engine restart for %s failed (%s); next try in %gs", self.bundle_dir, exc, delay)
                await asyncio.sleep(delay)
        self.restarts += 1
        self.observer.engine_restarted()
        self._begin_reading()
        log.info("a new decode engine for %s serves (pid %d)", self.bundle_dir, self._process.pid)
        self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            asyncio.ensure_future(listener())


def _reap(process: subprocess.Popen) -> None:
    """Collect a dead engine's exit status (it closed its pipe; it is exiting or gone)."""
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
