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
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from s2s.bundle import Bundle
from s2s.v1 import translator_pb2, translator_pb2_grpc
from service.config import ServerConfig
from service.interceptor import GrpcServerMetricsInterceptor
from service.metrics import MetricsServer, ServiceMetrics, start_metrics_server
from service.observer import SchedulerObserver
from service.registry import ModelRegistry
from service.scheduler import SchedulerConfig
from service.servicer import TranslatorServicer

log = logging.getLogger(__name__)

SERVICE_NAME = translator_pb2.DESCRIPTOR.services_by_name["Translator"].full_name  # "s2s.v1.Translator"
HEALTH_SERVICES = (SERVICE_NAME, "")  # "" = the server as a whole (Kubernetes' default probe)
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # attention matrices of a full batch of long texts fit


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
    port: int  # the bound gRPC port (also when 0 was asked for)
    metrics: ServiceMetrics
    metrics_server: MetricsServer | None
    _stopped: bool = False

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain and stop (idempotent): NOT_SERVING first, then refuse new work and give accepted
        requests `grace_s` (default: the configured grace period) before cancelling them."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.grace_period_s if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        self.metrics.set_serving(False)
        log.info("draining: NOT_SERVING; in-flight requests have %.1f s to finish", grace)
        try:
            await asyncio.gather(self.registry.stop(grace), self.server.stop(grace))
        finally:
            if self.metrics_server is not None:
                self.metrics_server.close()
        log.info("server stopped")


def _bind(server: grpc.aio.Server, host: str, port: int) -> int:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc raises RuntimeError("Failed to bind ...")
        raise StartupError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise StartupError(f"cannot listen on {address} (in use, or not an address of this host)")
    return bound


@contextlib.asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[RunningServer]:
    """Start a server from `config`; stop it (drain, grace period) when the block ends."""
    lazy = _LazyMetrics(config.scheduler)
    registry = await asyncio.to_thread(
        ModelRegistry.load, config.bundles, config.runner, config.scheduler, lazy.observer_for
    )
    assert lazy.metrics is not None, "ModelRegistry.load made no observer"
    interceptor = GrpcServerMetricsInterceptor(lazy.metrics.registry)
    interceptor.initialize(translator_pb2.DESCRIPTOR.services_by_name["Translator"])
    server = grpc.aio.server(
        interceptors=[interceptor],  # first: it sees the final status of every call
        options=[
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    translator_pb2_grpc.add_TranslatorServicer_to_server(TranslatorServicer(registry, config.limits), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    for name in HEALTH_SERVICES:  # until warm-up is done, probes must not send traffic here
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    port = _bind(server, config.host, config.port)
    metrics_server = None
    if config.metrics_port is not None:
        try:
            metrics_server = start_metrics_server(lazy.metrics.registry, config.host, config.metrics_port)
        except OSError as exc:
            raise StartupError(f"cannot serve metrics on {config.host}:{config.metrics_port}: {exc}") from exc
    running = RunningServer(config, server, health_servicer, registry, port, lazy.metrics, metrics_server)
    try:
        await server.start()
        if config.warmup:
            # Before the decode loops start: a runner is driven by one thread at a time. Calls
            # that arrive meanwhile wait in the queue (health still says NOT_SERVING).
            await asyncio.to_thread(registry.warm_up)
        await registry.start()
        for name in HEALTH_SERVICES:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
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


def _on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            log.debug("cannot install a handler for %s", sig.name)


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain for the grace period and return (exit 0)."""
    stop = asyncio.Event()
    _on_signals(asyncio.get_running_loop(), stop)
    async with running_server(config) as running:
        metrics = running.metrics_server.url if running.metrics_server else "off"
        # One line on stdout for people and scripts (port 0 picks a free port: this says which).
        where = f"{config.host}:{running.port}"
        print(f"s2s serving {', '.join(running.registry.specs())} on {where} (metrics: {metrics})",
              file=sys.stdout, flush=True)  # fmt: skip
        await stop.wait()
        log.info("signal received: shutting down")
        await running.stop()
