"""service/status.py: each typed error maps to its status code and carries its rich details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from service.errors import (
    Cancelled,
    DeadlineExceeded,
    Draining,
    FieldViolation,
    InvalidRequest,
    ModelNotFound,
    QueueFull,
)
from service.status import code_for, to_status


def _rich(status: grpc.Status) -> status_pb2.Status:
    [(key, value)] = [m for m in status.trailing_metadata if m[0] == "grpc-status-details-bin"]
    return status_pb2.Status.FromString(value)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest([FieldViolation("texts[0]", "must not be empty")]), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("no model 'x'"), grpc.StatusCode.NOT_FOUND),
        (QueueFull(queued=8, limit=8), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Draining("shutting down"), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (Cancelled("gone"), grpc.StatusCode.CANCELLED),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_maps_to_its_code(error: Exception, code: grpc.StatusCode) -> None:
    assert code_for(error) is code
    status = to_status(error)
    assert status.code is code
    assert _rich(status).code == code.value[0]


def test_invalid_request_carries_bad_request_field_violations() -> None:
    error = InvalidRequest(
        [FieldViolation("options.beam_size", "too big"), FieldViolation("texts[1]", "empty")]
    )
    rich = _rich(to_status(error))
    bad = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("options.beam_size", "too big"),
        ("texts[1]", "empty"),
    ]


def test_queue_full_carries_retry_info() -> None:
    rich = _rich(to_status(QueueFull(queued=3, limit=3, retry_after_s=0.25)))
    retry = error_details_pb2.RetryInfo()
    assert rich.details[0].Unpack(retry)
    assert retry.retry_delay.ToNanoseconds() == 250_000_000
    assert "3/3" in rich.message


def test_unexpected_errors_do_not_leak_their_message() -> None:
    status = to_status(RuntimeError("secret path /etc/x"))
    assert "secret" not in status.details
