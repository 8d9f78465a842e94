"""The go-grpc-prometheus server series (names, labels, buckets) and what one call records into
them; service/interceptor.py decides when (see its docstring for the counting rules)."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Histogram

from service import call_info

GRPC_LABELS = ("grpc_service", "grpc_method", "grpc_type")
access_log = logging.getLogger("s2s.access")

# Whole RPCs of this service: a few ms for a short greedy request, seconds for long beams and
# streams under load; the top buckets catch streams that stay open.
HANDLING_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GrpcServerMetrics:
    """The five go-grpc-prometheus server metric families, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.msg_received = Counter(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.msg_sent = Counter(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            GRPC_LABELS,
            buckets=HANDLING_SECONDS_BUCKETS,
            registry=registry,
        )


class MethodSeries:
    """One method's children of the five families, looked up once: `labels()` costs ~7 us a
    call, five times a call."""

    def __init__(self, metrics: GrpcServerMetrics, labels: tuple[str, str, str]) -> None:
        self.started = metrics.started.labels(*labels)
        self.received = metrics.msg_received.labels(*labels)
        self.sent = metrics.msg_sent.labels(*labels)
        self.handling_seconds = metrics.handling_seconds.labels(*labels)
        self._handled, self._metrics, self._labels = {}, metrics, labels

    def handled(self, code: grpc.StatusCode) -> Any:
        child = self._handled.get(code)
        if child is None:  # at most one per status code
            child = self._handled[code] = self._metrics.handled.labels(*self._labels, code.name)
        return child


class CallMonitor:
    """Counts one RPC: created when it starts, `done(code)` exactly once when it ends; with an
    access log, `done` also writes the call's line."""

    def __init__(
        self, series: MethodSeries, labels: tuple[str, str, str], context: aio.ServicerContext,
        access_log: bool,
    ) -> None:  # fmt: skip
        self._series = series
        self._labels = labels
        self._start = time.perf_counter()
        self._context = context if access_log else None
        self._info = call_info.CallInfo()
        call_info.current.set(self._info)  # this RPC's own task: the servicer notes into it
        series.started.inc()

    def received(self) -> None:
        self._series.received.inc()

    def sent(self) -> None:
        self._series.sent.inc()

    def done(self, code: grpc.StatusCode) -> None:
        seconds = time.perf_counter() - self._start
        self._series.handled(code).inc()
        self._series.handling_seconds.observe(seconds)
        if self._context is not None:
            # logfmt; never the request's text. The peer is the caller's address as gRPC sees it.
            access_log.info(
                "method=%s/%s code=%s ms=%.1f model=%s texts=%d peer=%s",
                self._labels[0], self._labels[1], code.name, seconds * 1000, self._info.model,
                self._info.texts, self._context.peer(),
            )  # fmt: skip
