"""The decode engine's own process: one bundle's ONNX Runtime sessions and its decode loop, fed
over a pipe by the server (service/engine_process.py holds the other end).

Why a process: the decode loop's Python bookkeeping (beam searches, batch filtering) and grpc.aio's
event loop and poller share one GIL when they live in one process, so each waits for the other
and cores stay idle (docs/performance.md). Here the loop has an interpreter of its own.

The loop is the Scheduler's own (service/scheduler.py), unchanged: `EngineCore` only replaces
where requests come from (the pipe, read by the loop itself between steps) and where deliveries go
(one message back per decoder step: the step's token events and results, the keys that joined
the batch, and the observer calls, which the server replays on its metrics).

Messages in: ("load", bundle_dir, RunnerConfig, SchedulerConfig, log level) first; then
("submit", [(key, submitted, DecodeRequest.fields()), ...]), ("cancel", key, deadline_passed), ("stop",),
or ("many", [message, ...]): what one turn of the server's event loop sent.
Out: ("ready", provider) or ("failed", kind, message) once, then per step
("out", [(key, item), ...], admitted_keys, observer_calls). An item travels as a tuple (`_wire`):
("token", ...) or ("result", ...) with the dataclasses' fields, or ("error", type name, message):
exceptions do not pickle reliably, and the names are few.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from s2s.search import Hypothesis
from service.handle import DecodeRequest, Result, TokenEvent
from service.scheduler import Scheduler, SchedulerConfig, gone_reason

log = logging.getLogger(__name__)

METRICS_DELAY_S = 0.05  # observer calls alone wait this long for a message that carries results


@dataclass(eq=False)
class EngineHandle:
    """The engine's side of a request: what the decode loop reads of a RequestHandle."""

    request: DecodeRequest
    key: int
    submitted: float  # time.monotonic() in the server: one clock for every process on the host
    cancel_requested: bool = False
    deadline_passed: bool = False


class RecordingObserver:
    """Keeps the decode loop's observer calls for the next message: the metrics live in the
    server. The engine has one thread: no lock."""

    def __init__(self) -> None:
        self._calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        def record(*args) -> None:
            self._calls.append((name, args))

        return record

    def take(self) -> list[tuple[str, tuple]]:
        calls, self._calls = self._calls, []
        return calls


class EngineCore(Scheduler):
    """The Scheduler's decode loop, run by the engine process's one thread and fed by the pipe
    instead of an event loop."""

    def __init__(self, runner, config: SchedulerConfig, conn: Connection):
        super().__init__(runner, config, RecordingObserver())
        self._conn = conn
        # The same socket for writes that must not block (MSG_DONTWAIT; the flag is per call,
        # so the Connection's reads stay blocking), and what the server sent while one waited.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._inbox: deque[tuple] = deque()
        self._by_key: dict[int, EngineHandle] = {}  # waiting or running, for cancel (under _cv)
        self._admitted: list[int] = []  # keys that joined the batch since the last message
        self._last_sent = 0.0  # time.monotonic() of the last message

    def serve(self) -> None:
        """Decode until ("stop",) or until the server is gone; then fail what is left with
        Draining (the server has answered those calls already) and return."""
        try:
            self._decode_thread()
        finally:
            self._sock.close()  # the dup; the Connection closes its own descriptor

    # The decode loop is the pipe's only reader: it takes the messages between steps (a newcomer
    # or a cancel would wait for the step's end anyway) and blocks on the pipe when idle. A
    # reader thread cost a GIL hand-off and a wake-up of the loop per message.
    def _wait_for_work(self) -> None:
        self._read(timeout=0)
        while not (self._waiting or self._running or self._abort):
            self._read(timeout=None)

    def _wait_for_input(self, timeout: float) -> bool:
        return self._read(timeout)

    def _read(self, timeout: float | None) -> bool:
        """Act on what the pipe holds, waiting up to `timeout` seconds (None: for ever) for the
        first message; False if none came. Sets _abort once told to stop or when the server is gone."""
        got = False
        try:
            while not self._abort and (self._inbox or self._conn.poll(timeout)):
                got, timeout = True, 0
                if not self._handle(self._inbox.popleft() if self._inbox else self._conn.recv()):
                    self._abort = True
        except (EOFError, OSError):
            log.info("the server closed the pipe; the engine stops")
            self._abort = True
        return got

    def _handle(self, message: tuple) -> bool:
        """Act on one message; False once told to stop."""
        if message[0] == "many":
            return all([self._handle(m) for m in message[1]])
        if message[0] == "submit":
            self._enqueue(message[1])
        elif message[0] == "cancel":
            self._cancel_key(message[1], message[2])
        return message[0] != "stop"

    def _enqueue(self, items: list[tuple[int, float, tuple]]) -> None:
        with self._cv:
            for key, submitted, fields in items:
                request = DecodeRequest(*fields)
                handle = EngineHandle(request, key, submitted)
                self._by_key[key] = handle
                self._waiting.append(handle)
                self._waiting_rows += request.beam_size
            self._cv.notify()

    def _cancel_key(self, key: int, deadline_passed: bool) -> None:
        # The server has answered the call; here its rows leave (before the next step) and it is
        # counted, once, with its reason.
        with self._cv:
            handle = self._by_key.pop(key, None)
            if handle is None:  # finished meanwhile: its result crossed the cancel in the pipe
                return
            handle.deadline_passed = deadline_passed
            handle.cancel_requested = True
            waiting = handle in self._waiting
            if waiting:
                self._waiting.remove(handle)
                self._waiting_rows -= handle.request.beam_size
        if waiting:  # counted now: an idle loop would not send it before its next step
            now = time.monotonic()
            self.observer.request_finished(gone_reason(handle, now), now - handle.submitted, 0)
            self._send(("out", [], [], self.observer.take()))

    def _admit(self, now: float) -> list:
        admitted = super()._admit(now)
        self._admitted.extend(h.key for h in admitted)  # lock held, as in Scheduler._admit
        return admitted

    def _flush(self) -> None:
        """After each decoder step: what clients wait for goes at once; the observer calls alone
        (metrics) wait up to METRICS_DELAY_S while the engine is busy, so a long request does not
        wake the server once per step, and go at once when it falls idle (gauges reach 0)."""
        with self._cv:
            admitted, self._admitted = self._admitted, []
            for handle, item in self._out:
                if not isinstance(item, TokenEvent):
                    self._by_key.pop(handle.key, None)
            busy = bool(self._running or self._waiting)
        now = time.monotonic()
        if not (self._out or admitted) and busy and now - self._last_sent < METRICS_DELAY_S:
            return
        calls = self.observer.take()
        if not (self._out or admitted or calls):
            return
        deliveries = [(handle.key, _wire(item)) for handle, item in self._out]
        self._out = []
        self._last_sent = now
        self._send(("out", deliveries, admitted, calls))

    def _send(self, message: tuple) -> None:
        """Write one message as Connection.send_bytes frames it. While the server's end is full,
        take in what the server sends: it may be blocked writing to this end (its event loop
        sends with a blocking write), and with one thread here neither would ever read."""
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        header = _frame_header(len(payload))
        pieces = (header + payload,) if len(payload) <= 16384 else (header, payload)  # as Connection
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    try:
                        view = view[self._sock.send(view, socket.MSG_DONTWAIT) :]
                    except BlockingIOError:
                        readable, _, _ = select.select([self._sock], [self._sock], [])
                        if readable:
                            self._inbox.append(self._conn.recv())  # acted on at the next read
        except (EOFError, OSError):
            self._abort = True  # the server is gone


def send_message(conn: Connection, message: tuple) -> None:
    """Connection.send without multiprocessing's ForkingPickler (a new pickler per message,
    ~8 us against ~1 for pickle.dumps; nothing here needs its reducers). Read by conn.recv()."""
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _frame_header(size: int) -> bytes:
    """multiprocessing.connection's length prefix, so Connection.recv reads what _send wrote."""
    return struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)


def _wire(item) -> tuple:
    """What crosses for one delivery, as plain tuples (a dataclass pickles in ~7x a tuple's time,
    and unpickles in ~4x); `unwire` in the server rebuilds the item."""
    if isinstance(item, TokenEvent):
        return ("token", item.position, item.tokens, item.log_probs, item.attention)
    if isinstance(item, Result):
        hypotheses = [tuple(getattr(h, name) for name in _HYPOTHESIS_FIELDS) for h in item.hypotheses]
        return ("result", hypotheses, item.queue_wait_s, item.total_s, item.steps)
    return ("error", type(item).__name__, str(item))


def unwire(wired: tuple, errors: dict[str, type[Exception]], unknown: type[Exception]):
    """The TokenEvent, Result or error (of `errors` by name, else `unknown`) that `_wire` sent."""
    kind = wired[0]
    if kind == "token":
        return TokenEvent(*wired[1:])
    if kind == "result":
        return Result([Hypothesis(*fields) for fields in wired[1]], *wired[2:])
    return errors.get(wired[1], unknown)(wired[2])


_HYPOTHESIS_FIELDS = tuple(f.name for f in dataclasses.fields(Hypothesis))


def main(argv: list[str]) -> int:
    """The engine process (`python -m service.engine_worker FD`): FD is its end of the socket
    pair. Load, warm up, say ready, serve; exit when told to stop or when the server is gone."""
    # The server decides when the engine stops: a Ctrl-C or a SIGTERM sent to the whole process
    # group must not end it before the server has drained.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    try:
        _, bundle_dir, runner_config, config, log_level = conn.recv()
    except (EOFError, OSError):
        return 1
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[engine]: %(message)s")
    if config.engine_nice:  # before ONNX Runtime starts its threads: they inherit it
        os.nice(config.engine_nice)
    from engine.allocator import tune_allocator
    from engine.sessions import ProviderUnavailable, Runner
    from s2s.bundle import load_bundle

    tune_allocator()

    try:
        runner = Runner.from_bundle(load_bundle(Path(bundle_dir)), runner_config)
        runner.warm_up()
    except ProviderUnavailable as exc:
        conn.send(("failed", "provider", str(exc)))
        return 1
    except Exception as exc:  # noqa: BLE001 - whatever it is, the server says it and refuses to start
        conn.send(("failed", "bundle", f"bundle {bundle_dir}: ONNX Runtime cannot load its graphs: {exc}"))
        return 1
    conn.send(("ready", runner.provider))
    EngineCore(runner, config, conn).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
