"""A grpc.aio server interceptor with the go-grpc-prometheus metric names.

Operators' gRPC dashboards already query these series, so the names, labels and counting rules
follow github.com/grpc-ecosystem/go-grpc-prometheus:

    grpc_server_started_total        RPCs started                  grpc_service, grpc_method, grpc_type
    grpc_server_handled_total        RPCs finished, by status code + grpc_code
    grpc_server_msg_received_total   request messages received
    grpc_server_msg_sent_total       response messages sent
    grpc_server_handling_seconds     time until the handler finished (histogram)

grpc_type is unary | client_stream | server_stream | bidi_stream. The status code is the one the
client sees: a code set with context.set_code() or context.abort(), UNKNOWN for an exception the
handler let escape, CANCELLED when the client went away and DEADLINE_EXCEEDED when its deadline
passed (both reach the handler as asyncio.CancelledError).

Put this interceptor first in `grpc.aio.server(interceptors=[...])`: the first interceptor wraps
all later ones, so it sees the status codes an error-mapping interceptor sets. Only async
handlers (coroutines and async generators) are measured; unknown methods are not counted, so a
scanner cannot mint label values.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio
from prometheus_client import CollectorRegistry

from service.grpc_series import CallMonitor, GrpcServerMetrics, MethodSeries
from service.status import deadline_passed

UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM = "unary", "client_stream", "server_stream", "bidi_stream"


def _code_after_return(context: aio.ServicerContext) -> grpc.StatusCode:
    return context.code() or grpc.StatusCode.OK


def _code_after_exception(exc: BaseException, context: aio.ServicerContext) -> grpc.StatusCode:
    set_code = context.code()
    if isinstance(exc, GeneratorExit):
        return grpc.StatusCode.CANCELLED  # grpc closed a streaming handler whose call ended
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.DEADLINE_EXCEEDED if deadline_passed(context) else grpc.StatusCode.CANCELLED
    if set_code is not None and set_code is not grpc.StatusCode.OK:
        return set_code  # context.abort() raised after setting it
    return grpc.StatusCode.UNKNOWN  # what grpc.aio sends for an escaped exception


class _WriteCountingContext:
    """Wraps a servicer context so that context.write() / read() in coroutine-style streaming
    handlers count messages; everything else goes to the real context."""

    def __init__(self, context: aio.ServicerContext, monitor: CallMonitor) -> None:
        self._context = context
        self._monitor = monitor

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._monitor.sent()

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not aio.EOF:
            self._monitor.received()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class GrpcServerMetricsInterceptor(aio.ServerInterceptor):
    """Measures every async RPC of the server it is installed on (see module docstring)."""

    def __init__(self, registry: CollectorRegistry, access_log: bool = False) -> None:
        self.metrics = GrpcServerMetrics(registry)
        self.access_log = access_log  # one "s2s.access" log line per call
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}  # by method
        self._series: dict[tuple[str, str, str], MethodSeries] = {}

    def initialize(self, service: ServiceDescriptor) -> None:
        """Create zero-valued series for every method of `service` (as go-grpc-prometheus'
        InitializeMetrics does), so rate() and alerts see 0 before the first call."""
        for method in service.methods:
            labels = (
                service.full_name,
                method.name,
                _type_of(method.client_streaming, method.server_streaming),
            )
            self.metrics.started.labels(*labels)
            self.metrics.msg_received.labels(*labels)
            self.metrics.msg_sent.labels(*labels)
            self.metrics.handling_seconds.labels(*labels)
            for code in grpc.StatusCode:
                self.metrics.handled.labels(*labels, code.name)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED; not counted
        # Wrapped once per method, as the gate does (only methods the server has are cached).
        cached = self._wrapped.get(handler_call_details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, handler_call_details.method)
        self._wrapped[handler_call_details.method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        service, method = _split_method(full_method)
        # The type the API declares: the call gate serves single-message requests as request
        # streams (service/gate.py) and says what they were.
        grpc_type = getattr(handler, "declared_type", "") or _type_of(
            handler.request_streaming, handler.response_streaming
        )
        labels = (service, method, grpc_type)
        self._series[labels] = self._series.get(labels) or MethodSeries(self.metrics, labels)
        wrap = {
            UNARY: self._wrap_unary_unary,
            SERVER_STREAM: self._wrap_unary_stream,
            CLIENT_STREAM: self._wrap_stream_unary,
            BIDI_STREAM: self._wrap_stream_stream,
        }[_type_of(handler.request_streaming, handler.response_streaming)]
        return wrap(handler, labels)

    def _wrap_unary_unary(self, handler: grpc.RpcMethodHandler, labels: tuple[str, str, str]) -> Any:
        behavior = handler.unary_unary
        if not inspect.iscoroutinefunction(behavior):
            return handler

        async def unary_unary(request: Any, context: aio.ServicerContext) -> Any:
            monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
            monitor.received()
            response = await self._run(behavior(request, context), monitor, context)
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )

    def _wrap_stream_unary(self, handler: grpc.RpcMethodHandler, labels: tuple[str, str, str]) -> Any:
        behavior = handler.stream_unary
        if not inspect.iscoroutinefunction(behavior):
            return handler

        async def stream_unary(request_iterator: Any, context: aio.ServicerContext) -> Any:
            monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
            requests = _counting_requests(request_iterator, monitor)
            return await self._run(
                behavior(requests, _WriteCountingContext(context, monitor)), monitor, context
            )

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )

    def _wrap_unary_stream(self, handler: grpc.RpcMethodHandler, labels: tuple[str, str, str]) -> Any:
        behavior = handler.unary_stream
        if inspect.isasyncgenfunction(behavior):

            async def unary_stream_gen(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
                monitor.received()
                async for response in self._run_stream(behavior(request, context), monitor, context):
                    yield response

            wrapped: Any = unary_stream_gen
        elif inspect.iscoroutinefunction(behavior):

            async def unary_stream_writes(request: Any, context: aio.ServicerContext) -> None:
                monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
                monitor.received()
                await self._run(behavior(request, _WriteCountingContext(context, monitor)), monitor, context)

            wrapped = unary_stream_writes
        else:
            return handler
        return grpc.unary_stream_rpc_method_handler(
            wrapped, handler.request_deserializer, handler.response_serializer
        )

    def _wrap_stream_stream(self, handler: grpc.RpcMethodHandler, labels: tuple[str, str, str]) -> Any:
        behavior = handler.stream_stream
        if inspect.isasyncgenfunction(behavior):

            async def stream_stream_gen(
                request_iterator: Any, context: aio.ServicerContext
            ) -> AsyncIterator[Any]:
                monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
                requests = _counting_requests(request_iterator, monitor)
                responses = behavior(requests, _WriteCountingContext(context, monitor))
                async for response in self._run_stream(responses, monitor, context):
                    yield response

            wrapped: Any = stream_stream_gen
        elif inspect.iscoroutinefunction(behavior):

            async def stream_stream_writes(request_iterator: Any, context: aio.ServicerContext) -> None:
                monitor = CallMonitor(self._series[labels], labels, context, self.access_log)
                requests = _counting_requests(request_iterator, monitor)
                await self._run(behavior(requests, _WriteCountingContext(context, monitor)), monitor, context)

            wrapped = stream_stream_writes
        else:
            return handler
        return grpc.stream_stream_rpc_method_handler(
            wrapped, handler.request_deserializer, handler.response_serializer
        )

    @staticmethod
    async def _run(call: Awaitable[Any], monitor: CallMonitor, context: aio.ServicerContext) -> Any:
        """Await a unary-response (or write-style) handler and record how it ended."""
        try:
            response = await call
        except BaseException as exc:
            monitor.done(_code_after_exception(exc, context))
            raise
        code = _code_after_return(context)
        # A unary response counts as sent only on OK, as in go-grpc-prometheus; write-style
        # handlers return None and counted their messages in write().
        if response is not None and code is grpc.StatusCode.OK:
            monitor.sent()
        monitor.done(code)
        return response

    @staticmethod
    async def _run_stream(
        responses: AsyncIterator[Any], monitor: CallMonitor, context: aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """Re-yield an async-generator handler's responses, counting each, and record the end."""
        try:
            async for response in responses:
                # Counted before the yield: grpc sends it when the wrapper resumes, and a message
                # grpc could not send ends the RPC with a non-OK code anyway.
                monitor.sent()
                yield response
        except BaseException as exc:
            monitor.done(_code_after_exception(exc, context))
            raise
        monitor.done(_code_after_return(context))


async def _counting_requests(
    request_iterator: AsyncIterator[Any], monitor: CallMonitor
) -> AsyncIterator[Any]:
    async for request in request_iterator:
        monitor.received()
        yield request


def _split_method(full_method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service or "unknown", method or "unknown"


def _type_of(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming and response_streaming:
        return BIDI_STREAM
    if request_streaming:
        return CLIENT_STREAM
    if response_streaming:
        return SERVER_STREAM
    return UNARY
