"""What goes into the scheduler and what comes back: DecodeRequest in, a RequestHandle out that
yields TokenEvents as tokens become final and ends with a Result (docs/design.md, "The scheduler
interface"). Plain data and asyncio only: no gRPC, no ONNX Runtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.config import DEFAULTS
from engine.events import TokenEvent
from s2s.search import Hypothesis

__all__ = ["DecodeRequest", "RequestHandle", "Result", "TokenEvent"]  # TokenEvent: the engine's own


@dataclass(frozen=True)
class DecodeRequest:
    src_ids: Sequence[int]  # source token ids, no specials, at least one
    beam_size: int = DEFAULTS.beam_size  # 1 = greedy
    n_best: int = DEFAULTS.n_best  # hypotheses returned, <= beam_size
    max_len: int = 100  # output tokens at most (the servicer applies max_length_ratio first)
    length_penalty: float = DEFAULTS.length_penalty  # GNMT alpha; 0 ranks by raw log-probability
    want_attention: bool = DEFAULTS.keep_attention  # keep attention rows (output × source)
    deadline: float | None = None  # time.monotonic() seconds; None = no deadline
    stream: bool = False  # emit TokenEvents as tokens become final

    def fields(self) -> tuple:
        """The field values in order, as the engine process receives them: DecodeRequest(*fields)
        is this request again (a tuple pickles in a quarter of a dataclass's time)."""
        return tuple(self.__dict__.values())


@dataclass
class Result:
    hypotheses: list[Hypothesis]  # n_best, best first
    queue_wait_s: float  # from submit to joining the running batch
    total_s: float  # from submit to the result
    steps: int  # decoder steps this request took part in


_END = object()  # sentinel after the Result


@dataclass(eq=False)
class RequestHandle:
    """Async iterator of TokenEvent items, then one Result; raises a service error instead when
    the request is cancelled, passes its deadline, or the server drains."""

    request: DecodeRequest
    key: int  # the scheduler's id for this request (row owner in the decode batch)
    submitted: float = field(default_factory=time.monotonic)
    _on_cancel: Callable[[RequestHandle], None] | None = None
    _items: asyncio.Queue = field(default_factory=asyncio.Queue)
    _closed: bool = False  # the final item (Result or error) has been delivered to the queue
    cancel_requested: bool = False
    deadline_passed: bool = False  # set with cancel_requested when the deadline is why

    # -- consumer side ---------------------------------------------------------------------------
    def cancel(self, deadline_passed: bool = False) -> None:
        """Stop decoding this request; its rows leave the batch within one step and the
        iterator raises Cancelled. No effect once the request has finished. deadline_passed:
        the caller knows its deadline is why (gRPC cancelled the call when it fired)."""
        if self._closed or self.cancel_requested:
            return
        self.cancel_requested = True
        self.deadline_passed = deadline_passed
        if self._on_cancel is not None:
            self._on_cancel(self)

    @property
    def done(self) -> bool:
        return self._closed

    def __aiter__(self) -> RequestHandle:
        return self

    async def __anext__(self) -> TokenEvent | Result:
        item = await self._items.get()
        if item is _END:
            self._items.put_nowait(_END)  # keep ending for repeated iteration
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._items.put_nowait(item)  # keep raising for repeated awaits
            raise item
        if isinstance(item, Result):
            self._items.put_nowait(_END)
        return item

    async def result(self) -> Result:
        """Wait for the end, skipping token events."""
        async for item in self:
            if isinstance(item, Result):
                return item
        raise RuntimeError("request ended without a result")  # unreachable: errors raise above

    # -- scheduler side (event-loop thread only) -------------------------------------------------
    def _emit(self, event: TokenEvent) -> None:
        if not self._closed:
            self._items.put_nowait(event)

    def _finish(self, outcome: Result | BaseException) -> None:
        if not self._closed:
            self._closed = True
            self._items.put_nowait(outcome)
