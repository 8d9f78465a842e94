"""The gate every call passes before a servicer sees it: who may call, how many at once, whether
the server still takes work, and what a request must be on the wire.

- Framing: every method with a single request message is served as a request *stream* of one
  message. grpc.aio's own unary path never answers a call that ends before a whole message
  arrived (END_STREAM with no DATA, a short length prefix: 500 such calls stayed open and held
  shutdown for the whole grace period), and it answers a message that does not parse with
  UNKNOWN plus a logged traceback. Reading the raw bytes here answers both INVALID_ARGUMENT,
  counted, with no traceback. Clients see no difference on the wire. A read still waiting
  READ_SLACK_S past the call's deadline ends it DEADLINE_EXCEEDED (see _read_request).
- Auth: with a token file (service/auth.py), Translator and reflection calls need a token with
  the `translate` scope and Admin calls one with `admin` (UNAUTHENTICATED / PERMISSION_DENIED,
  before the request is read). Health stays open for probes. Without a token file, Admin calls
  are taken from loopback peers only.
- Admission: calls in progress are bounded by kind (service/admission.py); a call beyond a bound
  is refused at once with RESOURCE_EXHAUSTED and RetryInfo, before its request is read. So is a
  Translate call while every model's decode queue is full (`queue_full`, from the registry): under
  overload most calls can only be refused, and reading and parsing them first was what filled the
  event loop.
- Drain: once `drain()` is called, new Translator and Admin calls get UNAVAILABLE while those
  already in progress finish; `wait_idle()` says when none is left and none has arrived for a
  moment (QUIET_S, waited for at most QUIET_WAIT_S). The moment matters: when gRPC stops, a call
  its core has received but not yet handed to Python is cancelled (CANCELLED, which clients do
  not retry), and a client whose last call just finished sends its next one at once. The wait
  for it is short: until gRPC stops, clients keep the connection and may keep picking this
  server, so a long one would hold them on a server that only says UNAVAILABLE.

Errors are raised as the typed errors of service/errors.py and sent by service/status.py.
Install after the metrics interceptor, so that what the gate refuses is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from service.admission import CallLimits, CallSlots
from service.auth import TokenFile, bearer_token
from service.errors import (
    DeadlineExceeded,
    Draining,
    MalformedRequest,
    PermissionDenied,
    TooManyCalls,
    Unauthenticated,
)
from service.status import abort_with

TRANSLATOR = "s2s.v1.Translator"
ADMIN = "s2s.v1.Admin"
HEALTH = "grpc.health.v1.Health"
LOOPBACK_PEERS = ("ipv4:127.", "ipv6:[::1]", "unix:")
QUIET_S = 0.05  # a drain ends after this long without a call coming or going (see above)...
QUIET_WAIT_S = 0.25  # ...or this long after the last call in progress finished
READ_SLACK_S = 1.0  # a request message still unread this long past the call's deadline ends it


@dataclass(frozen=True)
class _Policy:
    slots: tuple[str, ...]  # CallSlots kinds the call holds while in progress
    scope: str | None  # token scope needed; None: open (health)
    drains: bool  # refused with UNAVAILABLE once the server drains

    @property
    def decodes(self) -> bool:
        """Holds a decoding slot, so needs room in a decode queue (refused unread while every
        queue is full)."""
        return "decoding" in self.slots


_TRANSLATE = _Policy(("calls",), "translate", True)
_DECODING = ("calls", "decoding")
_POLICIES = {
    f"/{TRANSLATOR}/Translate": _Policy(_DECODING, "translate", True),
    f"/{TRANSLATOR}/TranslateStream": _Policy((*_DECODING, "streams"), "translate", True),
    f"/{ADMIN}/": _Policy(("calls",), "admin", True),
    f"/{HEALTH}/": _Policy(("health",), None, False),
}


def _policy(method: str) -> _Policy:
    if method in _POLICIES:
        return _POLICIES[method]
    service_prefix = method[: method.rfind("/") + 1]
    return _POLICIES.get(service_prefix, _TRANSLATE)  # Translator's others, reflection


@dataclass(frozen=True)
class FramedHandler(grpc.RpcMethodHandler):
    """A method handler as grpc.aio reads it, plus the type the API declares for the method
    (`declared_type`), which the metrics interceptor labels calls with."""

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Callable | None
    response_serializer: Callable | None
    unary_unary: Callable | None = None
    unary_stream: Callable | None = None
    stream_unary: Callable | None = None
    stream_stream: Callable | None = None
    declared_type: str = ""


class CallGate(aio.ServerInterceptor):
    def __init__(
        self,
        limits: CallLimits | None = None,
        tokens: TokenFile | None = None,
        queue_full: Callable[[], Exception | None] | None = None,
    ):
        self.slots = CallSlots(limits or CallLimits())
        self.tokens = tokens
        # The refusal a decoding call gets now without being read (ModelRegistry.all_queues_full).
        self.queue_full = queue_full
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # by method
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining_calls = 0  # calls in progress whose kind drains
        self._last_activity = 0.0  # time.monotonic() a call that drains last came or went

    # -- drain -----------------------------------------------------------------------------------
    def drain(self) -> None:
        """Refuse new Translator and Admin calls (UNAVAILABLE) from now on."""
        self._draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no Translator or Admin call is in progress (and after a quiet moment, see
        the module docstring); False after timeout_s."""
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        quiet_until = min(deadline, time.monotonic() + QUIET_WAIT_S)
        while time.monotonic() < quiet_until:
            quiet_for = time.monotonic() - self._last_activity
            if quiet_for >= QUIET_S and self._idle.is_set():
                break
            await asyncio.sleep(max(0.001, QUIET_S - quiet_for))
        return True

    @property
    def in_progress(self) -> int:
        return self._draining_calls

    # -- admission -------------------------------------------------------------------------------
    def _refusal(self, policy: _Policy, metadata: Any, peer: str) -> Exception | None:
        if policy.drains and self._draining:
            return Draining("server is shutting down; retry on another replica")
        if policy.scope is not None:
            problem = self._auth_problem(policy.scope, metadata, peer)
            if problem is not None:
                return problem
        full = self.slots.full(policy.slots)
        if full is not None:
            kind, retry_after = full
            return TooManyCalls(kind, self.slots.limits[kind], retry_after)
        if policy.decodes and self.queue_full is not None:
            return self.queue_full()
        return None

    def _auth_problem(self, scope: str, metadata: Any, peer: str) -> Exception | None:
        if self.tokens is None:
            if scope == "admin" and not peer.startswith(LOOPBACK_PEERS):
                return PermissionDenied(
                    "admin calls need a token with the admin scope (s2s serve --auth-tokens) "
                    "or a loopback connection"
                )
            return None
        token = bearer_token(metadata)
        if token is None:
            return Unauthenticated("a bearer token is required (metadata 'authorization: Bearer <token>')")
        scopes = self.tokens.scopes(token)
        if not scopes:
            return Unauthenticated("the bearer token is not valid")
        if scope not in scopes:
            return PermissionDenied(f"the token has no {scope!r} scope")
        return None

    @contextlib.asynccontextmanager
    async def _admitted(self, policy: _Policy, context: aio.ServicerContext) -> AsyncIterator[None]:
        if policy.drains:
            self._last_activity = time.monotonic()
        refusal = self._refusal(policy, context.invocation_metadata(), context.peer())
        if refusal is not None:
            await abort_with(context, refusal)
        self.slots.take(policy.slots)
        if policy.drains:
            self._draining_calls += 1
            self._idle.clear()
        try:
            yield
        finally:
            self.slots.give_back(policy.slots)
            if policy.drains:
                # Its client may send the next call the moment it has this answer.
                self._last_activity = time.monotonic()
                self._draining_calls -= 1
                if not self._draining_calls:
                    self._idle.set()

    # -- the interceptor -------------------------------------------------------------------------
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        # The wrapper of a method depends only on its handler: built once, not per call (~13 us).
        # Only methods the server has get an entry, so a scanner cannot grow the cache.
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        policy = _policy(method)
        if handler.request_streaming:
            wrapped = self._streaming_request(handler, policy)
        else:
            wrapped = self._framed(handler, policy)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _framed(self, handler: grpc.RpcMethodHandler, policy: _Policy) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        if not handler.response_streaming:
            behavior = handler.unary_unary

            async def one_response(_requests: Any, context: aio.ServicerContext) -> Any:
                async with self._admitted(policy, context):
                    return await behavior(await _read_request(context, parse), context)

            return FramedHandler(True, False, None, handler.response_serializer,
                                 stream_unary=one_response, declared_type="unary")  # fmt: skip
        behavior = handler.unary_stream
        if inspect.isasyncgenfunction(behavior):

            async def responses(_requests: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._admitted(policy, context):
                    request = await _read_request(context, parse)
                    async with contextlib.aclosing(behavior(request, context)) as items:
                        async for item in items:
                            yield item

            stream: Callable = responses
        else:  # a handler that writes with context.write() (grpc's health Watch)

            async def written(_requests: Any, context: aio.ServicerContext) -> None:
                async with self._admitted(policy, context):
                    await behavior(await _read_request(context, parse), context)

            stream = written
        return FramedHandler(True, True, None, handler.response_serializer,
                             stream_stream=stream, declared_type="server_stream")  # fmt: skip

    def _streaming_request(self, handler: grpc.RpcMethodHandler, policy: _Policy) -> grpc.RpcMethodHandler:
        """Request streams (reflection): auth, admission and drain only; grpc frames them."""
        if handler.response_streaming and inspect.isasyncgenfunction(handler.stream_stream):
            behavior = handler.stream_stream

            async def responses(requests: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._admitted(policy, context):
                    async with contextlib.aclosing(behavior(requests, context)) as items:
                        async for item in items:
                            yield item

            return grpc.stream_stream_rpc_method_handler(
                responses, handler.request_deserializer, handler.response_serializer
            )
        return handler  # no such method in this server; left as grpc serves it


async def _read_request(context: aio.ServicerContext, parse: Callable[[bytes], Any] | None) -> Any:
    """The call's one request message, parsed; the call ends INVALID_ARGUMENT (MalformedRequest)
    when there is none or it does not parse, and DEADLINE_EXCEEDED when it has not come
    READ_SLACK_S after the deadline."""
    remaining = context.time_remaining()
    if remaining is None:
        raw = await context.read()
    else:
        # grpc.aio's read ends when the call does (EOF once the client cancels or the deadline
        # fires in gRPC's core). The bound is a guard, not a fix: a read that outlived its deadline
        # would hold a call slot for good, and this ends it as the deadline, counted, its slot
        # freed. (The CI flake it was first written for, one call of twenty "never ended", was the
        # test's own blocking scrape stalling the server's event loop: tests/e2e/local_server.py.)
        # asyncio.timeout costs a timer, not a task: 10 us a call.
        try:
            async with asyncio.timeout(max(0.0, remaining) + READ_SLACK_S):
                raw = await context.read()
        except TimeoutError:
            await abort_with(
                context, DeadlineExceeded("the request message did not arrive before the deadline")
            )
    if raw is aio.EOF:
        await abort_with(
            context, MalformedRequest("the call ended before a complete request message arrived")
        )
    if parse is None:
        return raw
    try:
        return parse(raw)
    except Exception:  # noqa: BLE001 - DecodeError, or any deserializer's failure: the caller's bytes
        problem = f"the request ({len(raw)} bytes) is not a valid message of this method"
    await abort_with(context, MalformedRequest(problem))
