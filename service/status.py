"""The one place that maps service errors (service/errors.py) to gRPC status codes.

Every servicer method is wrapped with `@maps_service_errors`: domain code raises plain typed errors
and never touches gRPC codes. Rich details travel as google.rpc.Status (grpcio-status):
BadRequest field violations for INVALID_ARGUMENT, RetryInfo for RESOURCE_EXHAUSTED,
ResourceInfo for NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc._cython import cygrpc
from grpc_status import rpc_status

from s2s.bundle import BundleError
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    EngineUnavailable,
    InvalidRequest,
    LastModel,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ServiceError,
    StepFailed,
    Unauthenticated,
)

log = logging.getLogger(__name__)

MAX_FIELD_VIOLATIONS = 32  # listed in BadRequest; the rest are counted in one more violation
# The message travels twice in the trailers (grpc-message and grpc-status-details-bin); clients
# refuse trailers over 8-16 KiB, so no message may grow with what a request holds.
MAX_STATUS_MESSAGE_CHARS = 1024

# Error type -> status code. Order matters only for subclasses (first match wins).
STATUS_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),  # QueueFull, TooManyCalls
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Draining, grpc.StatusCode.UNAVAILABLE),
    (EngineUnavailable, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Cancelled, grpc.StatusCode.CANCELLED),
    (StepFailed, grpc.StatusCode.INTERNAL),
    (LastModel, grpc.StatusCode.FAILED_PRECONDITION),
    # A bundle that breaks while serving (e.g. a file vanished) is the server's fault.
    (BundleError, grpc.StatusCode.INTERNAL),
)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _details(exc: Exception) -> list[any_pb2.Any]:
    if isinstance(exc, InvalidRequest):
        shown = exc.violations[:MAX_FIELD_VIOLATIONS]
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in shown
            ]
        )
        if len(exc.violations) > len(shown):
            bad.field_violations.add(field="...", description=f"{len(exc.violations) - len(shown)} more")
        return [_pack(bad)]
    if isinstance(exc, Overloaded):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        return [_pack(error_details_pb2.RetryInfo(retry_delay=delay))]
    if isinstance(exc, ModelNotFound):
        info = error_details_pb2.ResourceInfo(
            resource_type="model", resource_name=exc.model, description="not loaded"
        )
        return [_pack(info)]
    return []


# A client cancels its call when its own deadline timer fires, a moment before the server's does
# (the server's deadline counts from when the headers arrived, after the transit and any queue
# in front of the handler): a cancellation this close to the deadline is the deadline.
DEADLINE_SLACK_S = 0.05


def deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call's deadline has passed, or all but DEADLINE_SLACK_S of it."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= DEADLINE_SLACK_S


def code_for(exc: Exception) -> grpc.StatusCode:
    """The status code a client sees for `exc`; INTERNAL for anything unexpected."""
    for error_type, code in STATUS_CODES:
        if isinstance(exc, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def to_status(exc: Exception) -> grpc.Status:
    """`exc` as a grpc.Status with google.rpc details (what `context.abort_with_status` takes)."""
    code = code_for(exc)
    message = str(exc) if isinstance(exc, ServiceError | BundleError) else "internal server error"
    if len(message) > MAX_STATUS_MESSAGE_CHARS:  # sent twice (grpc-message and the details)
        message = message[:MAX_STATUS_MESSAGE_CHARS] + "..."
    proto = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=message or code.name.lower(), details=_details(exc)
    )
    return rpc_status.to_status(proto)


async def abort_with(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """End the call with `exc`'s status (raises grpc.aio.AbortError, as context.abort does).

    Where the call already ended in gRPC's core (its deadline fired there, or the client went
    away) while the handler was deciding, there is nothing left to send: this raises
    asyncio.CancelledError, which grpc handles quietly, instead of the ExecuteBatchError and
    ERROR traceback that sending on a finished call gives."""
    if code_for(exc) is grpc.StatusCode.INTERNAL and not isinstance(
        exc, StepFailed
    ):  # logged where it failed
        log.error("request failed with an unexpected error", exc_info=exc)
    try:
        await context.abort_with_status(to_status(exc))
    except cygrpc.ExecuteBatchError:
        raise asyncio.CancelledError("the call ended before its status could be sent") from None


def maps_service_errors(method: Callable) -> Callable:
    """Wrap a grpc.aio servicer method (unary coroutine or async-generator stream) so that any
    exception becomes the mapped status. asyncio.CancelledError passes through untouched: it means
    the client went away and gRPC already knows."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
            try:
                # aclosing: when the client goes away, the inner generator's `finally` (which
                # cancels the scheduler request) runs now, not whenever it is garbage-collected.
                async with contextlib.aclosing(method(self, request, context)) as items:
                    async for item in items:
                        yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped, logged when unexpected
                await abort_with(context, exc)

        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped, logged when unexpected
            await abort_with(context, exc)

    return unary_wrapper
