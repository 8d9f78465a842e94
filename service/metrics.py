"""Prometheus metrics of one s2s server instance, and the /metrics HTTP endpoint.

Every server instance owns one `CollectorRegistry`, so several servers can live in one process
(tests do this) without their series mixing. Wiring, in service/server.py:

    metrics = ServiceMetrics(provider="cpu")                  # registry + process + info metrics
    observer = metrics.model_observer(model, version, sha,    # SchedulerObserver for the Scheduler
                                      max_queue=..., max_rows=...)  # from SchedulerConfig
    metrics.set_serving(True)                                 # with every health status change
    interceptor = GrpcServerMetricsInterceptor(metrics.registry)   # service/interceptor.py
    exporter = start_metrics_server(metrics.registry, host, port)  # port 0 picks a free port
    ...                                                       # exporter.port is the bound port
    exporter.close()                                          # on shutdown

Labels on decoder metrics: model, version, provider. Request text never becomes a label value.
Every metric name, meaning and label is listed in docs/observability.md.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from s2s import __version__

# `*_created` series double the series count and no dashboard or alert here reads them. The switch
# is process-wide in prometheus-client; this module is the metrics setup of the server process.
prometheus_client.disable_created_metrics()

NAMESPACE = "s2s"
MODEL_LABELS = ("model", "version", "provider")

# Buckets, in seconds or counts, chosen for this workload: an RNN decoder step over a batch takes
# 0.1-5 ms on CPU (less on GPU), a whole request 10 ms to a few seconds, and sources and outputs
# are tens of tokens. Each ladder spans about two decades either side of the typical value so the
# p99 of a slow or overloaded server still lands inside a bucket, not in +Inf.
# encoder runs and decoder steps: sub-millisecond, up to a quarter second on an overloaded host
STEP_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
# ~0 when idle; seconds only when the queue is saturated
QUEUE_WAIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# queue wait + encoder + first decoder step: a few ms when idle
FIRST_TOKEN_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# per output token: about one shared decoder step
TOKEN_SECONDS_BUCKETS = STEP_SECONDS_BUCKETS
# whole requests: tens of ms to seconds; a minute for long beams under load
REQUEST_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # batch rows: beam x requests
TOKENS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # sentence lengths in tokens

FINISH_REASONS = ("eos", "max_length", "cancelled", "deadline", "error")
REJECT_REASONS = ("queue_full", "draining", "invalid")
STEP_KINDS = ("encoder", "decoder")
RELOAD_RESULTS = ("loaded", "refused", "unloaded")


@dataclass(frozen=True)
class _DecoderMetrics:
    """The decoder metric families of one registry; children are bound per model observer."""

    requests_received: Counter
    requests_rejected: Counter
    requests_finished: Counter
    output_tokens: Counter
    queue_wait: Histogram
    first_token: Histogram
    time_per_token: Histogram
    request_duration: Histogram
    step_duration: Histogram
    step_rows: Histogram
    source_tokens: Histogram
    output_tokens_per_request: Histogram
    queued_requests: Gauge
    queued_rows: Gauge
    running_requests: Gauge
    running_rows: Gauge
    queue_capacity: Gauge
    batch_capacity: Gauge
    engine_restarts: Counter
    model_info: Info

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _DecoderMetrics:
        common = {"namespace": NAMESPACE, "registry": registry}
        labels = MODEL_LABELS
        return cls(
            requests_received=Counter(
                "requests_received", "Requests accepted into the scheduler queue.", labels, **common
            ),
            requests_rejected=Counter(
                "requests_rejected",
                "Requests refused before decoding, by reason (queue_full, draining, invalid).",
                (*labels, "reason"),
                **common,
            ),
            requests_finished=Counter(
                "requests_finished",
                "Requests that left the scheduler, by finish reason "
                "(eos, max_length, cancelled, deadline, error).",
                (*labels, "reason"),
                **common,
            ),
            output_tokens=Counter(
                "output_tokens", "Output tokens produced (best hypothesis per request).", labels, **common
            ),
            queue_wait=Histogram(
                "queue_wait_seconds",
                "Time from submit until the request's rows joined the running batch.",
                labels,
                buckets=QUEUE_WAIT_SECONDS_BUCKETS,
                **common,
            ),
            first_token=Histogram(
                "time_to_first_token_seconds",
                "Time from submit until the first output token was final.",
                labels,
                buckets=FIRST_TOKEN_SECONDS_BUCKETS,
                **common,
            ),
            time_per_token=Histogram(
                "time_per_output_token_seconds",
                "Request duration divided by its output tokens.",
                labels,
                buckets=TOKEN_SECONDS_BUCKETS,
                **common,
            ),
            request_duration=Histogram(
                "request_duration_seconds",
                "Time from submit until the request finished, for every finish reason.",
                labels,
                buckets=REQUEST_SECONDS_BUCKETS,
                **common,
            ),
            step_duration=Histogram(
                "step_duration_seconds",
                "Time of one encoder run or one decoder step over the whole batch, by step kind.",
                (*labels, "step"),
                buckets=STEP_SECONDS_BUCKETS,
                **common,
            ),
            step_rows=Histogram(
                "step_rows",
                "Rows (sources for the encoder, hypotheses for the decoder) in one step, by kind.",
                (*labels, "step"),
                buckets=ROWS_BUCKETS,
                **common,
            ),
            source_tokens=Histogram(
                "source_tokens",
                "Source length of each accepted request, in tokens.",
                labels,
                buckets=TOKENS_BUCKETS,
                **common,
            ),
            output_tokens_per_request=Histogram(
                "output_length_tokens",
                "Output length of each finished request, in tokens.",
                labels,
                buckets=TOKENS_BUCKETS,
                **common,
            ),
            queued_requests=Gauge(
                "queued_requests", "Requests waiting for room in the batch.", labels, **common
            ),
            queued_rows=Gauge(
                "queued_rows",
                "Decoder rows waiting for room in the batch (a request with beam b needs b).",
                labels,
                **common,
            ),
            running_requests=Gauge(
                "running_requests", "Requests being decoded in the batch.", labels, **common
            ),
            running_rows=Gauge(
                "running_rows", "Decoder rows in the batch (beam hypotheses).", labels, **common
            ),
            queue_capacity=Gauge(
                "queue_capacity_rows",
                "Configured queue limit in decoder rows (max_queue); queued_rows / this is queue saturation.",
                labels,
                **common,
            ),
            batch_capacity=Gauge(
                "batch_capacity_rows", "Configured batch limit (max_rows).", labels, **common
            ),
            engine_restarts=Counter(
                "engine_restarts",
                "Decode engine processes started again after one died (--engine process).",
                labels,
                **common,
            ),
            model_info=Info(
                "model",
                "The loaded model bundle: build version of s2s and the bundle's sha256.",
                labels,
                **common,
            ),
        )


class ServiceMetrics:
    """All metrics of one server instance in its own registry, with process metrics on."""

    def __init__(self, provider: str, registry: CollectorRegistry | None = None) -> None:
        self.provider = provider
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # process_* (CPU, memory, fds) and python_info: a fresh registry has neither by default.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._decoder = _DecoderMetrics.register(self.registry)
        self._serving = Gauge(
            "serving",
            "1 while the health service reports SERVING, 0 while starting or draining.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._reloads = Counter(
            "model_reloads",
            "Model versions taken into service, refused, or taken out, while serving (hot reload).",
            ["result"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        for result in RELOAD_RESULTS:
            self._reloads.labels(result)

    def reloaded(self, result: str, count: int = 1) -> None:
        """result: "loaded" | "refused" | "unloaded"."""
        if count:
            self._reloads.labels(result).inc(count)

    def set_serving(self, serving: bool) -> None:
        """Mirror the health status, so alerts can tell an idle ready server from a draining one."""
        self._serving.set(1 if serving else 0)

    def model_observer(
        self,
        model: str,
        version: str,
        bundle_sha: str,
        *,
        max_queue: int | None = None,
        max_rows: int | None = None,
    ) -> SchedulerMetrics:
        """The SchedulerObserver for one loaded bundle; also publishes its info metric and, when
        given, the scheduler's limits (the queue saturation alert divides by max_queue)."""
        observer = SchedulerMetrics(self._decoder, model, version, self.provider, bundle_sha)
        if max_queue is not None and max_rows is not None:
            observer.set_capacity(max_queue=max_queue, max_rows=max_rows)
        return observer


class SchedulerMetrics:
    """Implements service.observer.SchedulerObserver with children bound to one model's labels."""

    def __init__(
        self, families: _DecoderMetrics, model: str, version: str, provider: str, bundle_sha: str
    ) -> None:
        labels = {"model": model, "version": version, "provider": provider}
        self._families, self._labels = families, labels
        m = families
        m.model_info.labels(**labels).info({"build_version": __version__, "bundle_sha": bundle_sha})
        self._received = m.requests_received.labels(**labels)
        self._output_tokens = m.output_tokens.labels(**labels)
        # Every reason's child exists from the start, so rate() and absent() work before the first
        # rejection or timeout instead of the series appearing mid-incident.
        self._rejected = {r: m.requests_rejected.labels(**labels, reason=r) for r in REJECT_REASONS}
        self._finished = {r: m.requests_finished.labels(**labels, reason=r) for r in FINISH_REASONS}
        self._queue_wait = m.queue_wait.labels(**labels)
        self._first_token = m.first_token.labels(**labels)
        self._time_per_token = m.time_per_token.labels(**labels)
        self._duration = m.request_duration.labels(**labels)
        self._step = {k: m.step_duration.labels(**labels, step=k) for k in STEP_KINDS}
        self._rows = {k: m.step_rows.labels(**labels, step=k) for k in STEP_KINDS}
        self._source_tokens = m.source_tokens.labels(**labels)
        self._output_length = m.output_tokens_per_request.labels(**labels)
        self._queued = m.queued_requests.labels(**labels)
        self._queued_rows = m.queued_rows.labels(**labels)
        self._running_requests = m.running_requests.labels(**labels)
        self._running_rows = m.running_rows.labels(**labels)
        self._queue_capacity = m.queue_capacity.labels(**labels)
        self._batch_capacity = m.batch_capacity.labels(**labels)
        self._engine_restarts = m.engine_restarts.labels(**labels)

    def remove(self) -> None:
        """Drop every series of this model (it was unloaded): a stale gauge of a model that is
        gone would read as load, and its info series as a model still served."""
        for name in (f.name for f in dataclasses.fields(self._families)):
            getattr(self._families, name).remove_by_labels(self._labels)

    def set_capacity(self, max_queue: int, max_rows: int) -> None:
        """Publish the scheduler's limits (not part of SchedulerObserver: set once at start)."""
        self._queue_capacity.set(max_queue)
        self._batch_capacity.set(max_rows)

    def request_queued(self, src_len: int) -> None:
        self._received.inc()
        self._source_tokens.observe(src_len)

    def request_rejected(self, reason: str) -> None:
        # An unknown reason is a scheduler bug; count it as "invalid" rather than mint a label.
        self._rejected.get(reason, self._rejected["invalid"]).inc()

    def request_started(self, queue_wait_s: float) -> None:
        self._queue_wait.observe(queue_wait_s)

    def first_token(self, seconds_since_submit: float) -> None:
        self._first_token.observe(seconds_since_submit)

    def request_finished(self, reason: str, duration_s: float, output_tokens: int) -> None:
        self._finished.get(reason, self._finished["error"]).inc()
        self._duration.observe(duration_s)
        self._output_tokens.inc(output_tokens)
        if reason in ("eos", "max_length"):
            # Lengths and per-token times of cut-short requests would skew both distributions.
            self._output_length.observe(output_tokens)
            if output_tokens > 0:
                self._time_per_token.observe(duration_s / output_tokens)

    def engine_restarted(self) -> None:
        self._engine_restarts.inc()

    def encoder_run(self, rows: int, seconds: float) -> None:
        self._step["encoder"].observe(seconds)
        self._rows["encoder"].observe(rows)

    def decoder_step(self, rows: int, seconds: float) -> None:
        self._step["decoder"].observe(seconds)
        self._rows["decoder"].observe(rows)

    def occupancy(self, queued: int, queued_rows: int, running_requests: int, running_rows: int) -> None:
        self._queued.set(queued)
        self._queued_rows.set(queued_rows)
        self._running_requests.set(running_requests)
        self._running_rows.set(running_rows)


@dataclass
class MetricsServer:
    """A running /metrics HTTP endpoint (a daemon thread serving one registry)."""

    host: str
    port: int  # the bound port, also when 0 was asked for
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics; port 0 binds a free port (see .port)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host=host, port=server.server_port, _server=server, _thread=thread)
