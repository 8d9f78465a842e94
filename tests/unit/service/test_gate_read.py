"""service/gate.py's request read: bounded by the call's deadline.

grpc.aio's own read ends when the call does, so no real call can be made to hang it: this drives
the gate's reader with a context whose read never returns, the case seen once in CI (a call
started and never ended). Everything else about the read runs on real servers in tests/e2e."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from service import gate


class _HangingContext:
    """A servicer context whose request never arrives; abort() as grpc.aio's (it raises)."""

    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining
        self.status: grpc.StatusCode | None = None

    def time_remaining(self) -> float | None:
        return self.remaining

    async def read(self):
        await asyncio.Event().wait()

    async def abort_with_status(self, status) -> None:
        self.status = status.code
        raise grpc.aio.AbortError()


async def test_a_read_that_never_ends_ends_as_the_deadline(monkeypatch):
    monkeypatch.setattr(gate, "READ_SLACK_S", 0.05)
    context = _HangingContext(remaining=0.05)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AbortError):
        await gate._read_request(context, None)
    assert context.status is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5  # bounded, not a timing target: it would hang otherwise


async def test_a_read_with_no_deadline_is_not_bounded(monkeypatch):
    monkeypatch.setattr(gate, "READ_SLACK_S", 0.0)
    context = _HangingContext(remaining=None)
    with pytest.raises(TimeoutError):  # the test's own bound: the gate's read is still waiting
        async with asyncio.timeout(0.2):
            await gate._read_request(context, None)
    assert context.status is None
