"""Typed domain errors of the service. Domain code raises these; exactly one place
(service/status.py, the gRPC error interceptor) maps them to gRPC status codes."""

from __future__ import annotations

from dataclasses import dataclass, field

# A client's own values (model names, versions) come back in errors only cut to this many
# characters: an echoed 3 KB name once pushed the trailers past clients' metadata limits, so the
# client saw RESOURCE_EXHAUSTED "Stream removed" instead of NOT_FOUND.
MAX_ECHOED_CHARS = 64


def shown(value: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """`value` quoted for an error message, cut to `limit` characters (with its full length)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


class ServiceError(Exception):
    """Base of every error the service reports to a client."""


@dataclass
class FieldViolation:
    field: str  # request field path, e.g. "texts[2]" or "options.beam_size"
    description: str


class InvalidRequest(ServiceError):
    """The request is malformed: bad options or text. Carries one violation per bad field."""

    def __init__(self, violations: list[FieldViolation]):
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class MalformedRequest(InvalidRequest):
    """The request is not a message of the method's type at all (it does not parse, or the call
    ended before a whole message arrived)."""

    def __init__(self, description: str):
        super().__init__([FieldViolation("request", description)])


class ModelNotFound(ServiceError):
    """No loaded bundle matches the requested model name/version."""

    def __init__(self, message: str, model: str = ""):
        super().__init__(message)
        self.model = model  # "name/version" as the client asked, already cut by shown()


class Overloaded(ServiceError):
    """The server has no room for this call now; the client should retry after `retry_after_s`
    (sent as google.rpc.RetryInfo with RESOURCE_EXHAUSTED)."""

    retry_after_s: float = 0.1


@dataclass
class QueueFull(Overloaded):
    """The scheduler's queue has no room for the call's rows."""

    queued: int  # decoder rows waiting
    limit: int
    retry_after_s: float = field(default=0.1)
    wanted: int = 0  # rows the refused call needed

    def __str__(self) -> str:
        need = f"; this call needs {self.wanted}" if self.wanted else ""
        return f"server is at capacity ({self.queued}/{self.limit} decoder rows queued{need}); retry later"


@dataclass
class TooManyCalls(Overloaded):
    """More calls of this kind are in progress than the server admits at once."""

    kind: str  # "calls", "decoding", "streams", "health"
    limit: int
    retry_after_s: float = field(default=0.1)

    def __str__(self) -> str:
        what = {"decoding": "decoding calls", "health": "health calls"}.get(self.kind, self.kind)
        return f"server is at capacity ({self.limit} {what} in progress); retry later"


class Unauthenticated(ServiceError):
    """No bearer token, or one that is not valid."""


class PermissionDenied(ServiceError):
    """A valid token without the scope this method needs."""


class LastModel(ServiceError):
    """The one model left cannot be unloaded: the server would have nothing to serve."""


class Draining(ServiceError):
    """The server is shutting down and takes no new work."""


class EngineUnavailable(ServiceError):
    """The decode engine's process stopped (it is being restarted): the call may be retried."""


class StepFailed(ServiceError):
    """Decoding failed on the server (ONNX Runtime inside a step, or a request's search): the
    requests concerned fail with INTERNAL and the decode loop goes on. The cause is logged once,
    where it happened; clients see no internals."""

    def __str__(self) -> str:
        return "decoding failed on the server; the cause is in its log"


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before it finished."""


class Cancelled(ServiceError):
    """The client cancelled the request."""
