"""The gRPC server's life: load models, bind, warm up, report SERVING, drain on SIGTERM/SIGINT.

    asyncio.run(serve(ServerConfig()))          # what `s2s serve` runs
    async with running_server(config) as srv:   # what tests use: srv.port, srv.stop(grace)

Start-up is all-or-nothing: a missing or corrupt bundle, a required provider that is absent or a
port in use raises StartupError/BundleError/ProviderUnavailable before anything reports SERVING.
Shutdown: health NOT_SERVING first (for good), then new work is refused while accepted requests
get the grace period to finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from s2s.bundle import Bundle
from s2s.v1 import translator_pb2, translator_pb2_grpc
from service.admin import AdminServicer
from service.auth import TokenFile, TokenFileError
from service.config import ServerConfig
from service.gate import CallGate
from service.interceptor import GrpcServerMetricsInterceptor
from service.metrics import MetricsServer, ServiceMetrics, start_metrics_server
from service.observer import SchedulerObserver
from service.registry import ModelRegistry
from service.reload import ModelReloader, ReloadReport
from service.scheduler import SchedulerConfig
from service.servicer import TranslatorServicer
from service.tls import TlsError, server_credentials

log = logging.getLogger(__name__)

SERVICE_NAME = translator_pb2.DESCRIPTOR.services_by_name["Translator"].full_name  # "s2s.v1.Translator"
ADMIN_SERVICE_NAME = translator_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
HEALTH_SERVICES = (SERVICE_NAME, "")  # "" = the server as a whole (Kubernetes' default probe)
MAX_SEND_BYTES = 32 * 1024 * 1024  # responses: attention matrices of a full batch of long texts fit


class StartupError(Exception):
    """The server cannot start (e.g. its port is taken); the message says why."""


class _LazyMetrics:
    """ServiceMetrics made on the first model load, labelled with the provider the runner actually
    got (CUDA may fall back to CPU)."""

    def __init__(self, scheduler: SchedulerConfig) -> None:
        self.scheduler = scheduler
        self.metrics: ServiceMetrics | None = None

    def observer_for(self, bundle: Bundle, bundle_sha: str, provider: str) -> SchedulerObserver:
        if self.metrics is None:
            self.metrics = ServiceMetrics(provider=provider)
        return self.metrics.model_observer(
            model=bundle.name,
            version=bundle.version,
            bundle_sha=bundle_sha[:12],
            max_queue=self.scheduler.max_queue,  # capacity gauges: saturation alerts divide by them
            max_rows=self.scheduler.max_rows,
        )


@dataclass
class RunningServer:
    config: ServerConfig
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    registry: ModelRegistry
    gate: CallGate
    reloader: ModelReloader
    port: int  # the bound gRPC port (also when 0 was asked for)
    metrics: ServiceMetrics
    metrics_server: MetricsServer | None
    health_server: tuple[grpc.aio.Server, int] | None = None  # plaintext health-only port, bound port
    _stopped: bool = False

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain and stop (idempotent): NOT_SERVING first, then new calls get UNAVAILABLE while
        every call in progress gets up to `grace_s` (default: the configured grace period) to
        finish; only then does gRPC stop, cancelling what is left.

        gRPC's own graceful stop is not used to drain: it cancels calls it has received but not
        yet handed to a handler, which an outside test saw lose 12-14 of 20 heavy calls."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.grace_period_s if grace_s is None else grace_s
        started = time.monotonic()
        await self.health.enter_graceful_shutdown()
        self.metrics.set_serving(False)
        self.gate.drain()
        log.info(
            "draining: NOT_SERVING; %d calls in progress have %.1f s to finish", self.gate.in_progress, grace
        )
        try:
            if not await self.gate.wait_idle(grace):
                log.warning(
                    "grace period over with %d calls in progress; cancelling them", self.gate.in_progress
                )
            left = max(0.0, grace - (time.monotonic() - started))
            await asyncio.gather(self.registry.stop(left), self.server.stop(left), self.reloader.settled())
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()
            if self.health_server is not None:
                await self.health_server[0].stop(0)
        log.info("server stopped")


def _bind(
    server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None = None
) -> int:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpc raises RuntimeError("Failed to bind ...")
        raise StartupError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise StartupError(f"cannot listen on {address} (in use, or not an address of this host)")
    return bound


class _ModelHealth:
    """Health per model name ("s2s.v1.Translator/<name>": SERVING while a version of it is
    loaded, NOT_SERVING once none is) and the reload counters, kept up to date by the reloader."""

    def __init__(self, health_servicer: health.aio.HealthServicer, registry: ModelRegistry, metrics):
        self.health, self.registry, self.metrics = health_servicer, registry, metrics
        self._names: set[str] = set()
        self.serving_overall = False  # set once warm-up is done: until then everything is NOT_SERVING

    async def changed(self, report: ReloadReport | None = None) -> None:
        names = {m.name for m in self.registry.models}
        # A name serves while one of its versions has a decode engine up (a process engine that
        # died is NOT_SERVING until its restart is done); the service as a whole while all do.
        up = {m.name for m in self.registry.models if getattr(m.scheduler, "serving", True)}
        for model in self.registry.models:
            listeners = getattr(model.scheduler, "listeners", None)
            if listeners is not None and self.changed not in listeners:
                listeners.append(self.changed)
        for name in names:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if name in up
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            await self.health.set(f"{SERVICE_NAME}/{name}", status)
        if self.serving_overall:
            overall = (
                health_pb2.HealthCheckResponse.SERVING
                if up == names
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for service_name in HEALTH_SERVICES:
                await self.health.set(service_name, overall)
        for name in self._names - names:
            await self.health.set(f"{SERVICE_NAME}/{name}", health_pb2.HealthCheckResponse.NOT_SERVING)
        self._names = names
        if report is not None:
            self.metrics.reloaded("loaded", len(report.loaded))
            self.metrics.reloaded("refused", len(report.refused))
            self.metrics.reloaded("unloaded", len(report.unloaded))


async def _health_port_server(
    config: ServerConfig, health_servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int] | None:
    """A plaintext port that answers grpc.health.v1 only, for probes that cannot speak TLS
    (Kubernetes' native gRPC probes, the image's HEALTHCHECK): it tells whether the server is
    SERVING and nothing else. None when no --health-port is set."""
    if config.health_port is None:
        return None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4096)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = _bind(server, config.host, config.health_port)
    await server.start()
    return server, port


@contextlib.asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[RunningServer]:
    """Start a server from `config`; stop it (drain, grace period) when the block ends."""
    try:  # the cheap checks first: a bad certificate must not wait for the models to load
        tokens = TokenFile(config.auth_tokens) if config.auth_tokens else None
        credentials = server_credentials(config.tls) if config.tls else None
    except (TokenFileError, TlsError) as exc:
        raise StartupError(str(exc)) from exc
    lazy = _LazyMetrics(config.scheduler)
    registry = await asyncio.to_thread(
        ModelRegistry.load, config.bundles, config.runner, config.scheduler, lazy.observer_for
    )
    assert lazy.metrics is not None, "ModelRegistry.load made no observer"
    interceptor = GrpcServerMetricsInterceptor(lazy.metrics.registry, access_log=config.access_log)
    interceptor.initialize(translator_pb2.DESCRIPTOR.services_by_name["Translator"])
    limits = config.calls.for_rows(config.scheduler.max_rows)
    gate = CallGate(limits, tokens, queue_full=registry.all_queues_full)
    server = grpc.aio.server(
        # Metrics first: it sees the final status of every call, the gate's refusals included.
        interceptors=[interceptor, gate],
        options=[
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ("grpc.max_receive_message_length", config.receive_limit),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            # HTTP/2 streams one connection may have open: bounds gRPC's per-stream state. Above
            # the gate's bounds, so a call beyond them is refused at once (RESOURCE_EXHAUSTED),
            # not left waiting in the client's transport for a stream to free up.
            ("grpc.max_concurrent_streams", 2 * (config.calls.max_calls + config.calls.max_health_calls)),
        ],
    )
    translator_pb2_grpc.add_TranslatorServicer_to_server(TranslatorServicer(registry, config.limits), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    model_health = _ModelHealth(health_servicer, registry, lazy.metrics)
    reloader = ModelReloader(
        registry, config.bundles, config.runner, config.scheduler, lazy.observer_for,
        config.grace_period_s, on_change=model_health.changed,
    )  # fmt: skip
    translator_pb2_grpc.add_AdminServicer_to_server(AdminServicer(reloader), server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, ADMIN_SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )  # fmt: skip
    for name in HEALTH_SERVICES:  # until warm-up is done, probes must not send traffic here
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    port = _bind(server, config.host, config.port, credentials)
    health_only = await _health_port_server(config, health_servicer)
    metrics_server = None
    if config.metrics_port is not None:
        try:
            metrics_server = start_metrics_server(lazy.metrics.registry, config.host, config.metrics_port)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc}") from exc
    running = RunningServer(
        config,
        server,
        health_servicer,
        registry,
        gate,
        reloader,
        port,
        lazy.metrics,
        metrics_server,
        health_only,
    )
    try:
        await server.start()
        if config.warmup:
            # Before the decode loops start: a runner is driven by one thread at a time. Calls
            # that arrive meanwhile wait in the queue (health still says NOT_SERVING).
            await asyncio.to_thread(registry.warm_up)
        await registry.start()
        # What start-up made (modules, graphs, descriptors) lives as long as the server: out of
        # the collector's sight, a full collection no longer walks it. Measured under overload,
        # those collections held the event loop 40-50 ms each (docs/reliability.md).
        gc.collect()
        gc.freeze()
        model_health.serving_overall = True
        await model_health.changed()
        lazy.metrics.set_serving(True)
        log.info(
            "serving %s on %s (grpc port %d%s)",
            ", ".join(registry.specs()),
            config.host,
            port,
            f", metrics {metrics_server.url}" if metrics_server else ", metrics off",
        )
        yield running
    finally:
        await running.stop()


def _on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, reload: asyncio.Event) -> None:
    for sig, event in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload)):
        try:
            loop.add_signal_handler(sig, event.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            log.debug("cannot install a handler for %s", sig.name)


async def _reload_on_sighup(running: RunningServer, wanted: asyncio.Event) -> None:
    while True:
        await wanted.wait()
        wanted.clear()
        log.info("SIGHUP: re-reading the bundle paths")
        report = await running.reloader.reload()
        for path, reason in report.refused:
            log.error("SIGHUP reload refused %s: %s", path, reason)


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain for the grace period and return (exit 0)."""
    stop, reload = asyncio.Event(), asyncio.Event()
    _on_signals(asyncio.get_running_loop(), stop, reload)
    async with running_server(config) as running:
        reloading = asyncio.ensure_future(_reload_on_sighup(running, reload))
        metrics = running.metrics_server.url if running.metrics_server else "off"
        # One line on stdout for people and scripts (port 0 picks a free port: this says which).
        where = f"{config.host}:{running.port}"
        print(f"s2s serving {', '.join(running.registry.specs())} on {where} (metrics: {metrics})",
              file=sys.stdout, flush=True)  # fmt: skip
        await stop.wait()
        log.info("signal received: shutting down")
        reloading.cancel()
        await running.stop()
