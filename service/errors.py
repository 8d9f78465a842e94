"""Typed domain errors of the service. Domain code raises these; exactly one place
(service/status.py, the gRPC error interceptor) maps them to gRPC status codes."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class ModelNotFound(ServiceError):
    """No loaded bundle matches the requested model name/version."""


@dataclass
class QueueFull(ServiceError):
    """The scheduler's queue is full; the client should retry after `retry_after_s`."""

    queued: int
    limit: int
    retry_after_s: float = field(default=0.1)

    def __str__(self) -> str:
        return f"server is at capacity ({self.queued}/{self.limit} requests queued); retry later"


class Draining(ServiceError):
    """The server is shutting down and takes no new work."""


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before it finished."""


class Cancelled(ServiceError):
    """The client cancelled the request."""
