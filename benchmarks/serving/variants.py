"""The decoding variants the benchmark compares, all on one bundle (and its checkpoint).

Each has `name`, `await start()`, `await call(text) -> (tokens, words, ttft_s | None)`, `await
stop()`. The per-request baselines run in-process in a pool of `workers` threads, each decoding
one request at a time with `threads` intra-op threads (a server with a worker pool, minus gRPC:
this favours the baselines). The server variant talks real gRPC to an `s2s serve` subprocess.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.config import max_output_length
from s2s.bundle import Bundle


@dataclass(frozen=True)
class DecodeSetup:
    beam_size: int = 1  # 5 for the beam-search runs
    precision: str = "fp32"  # "fp32" | "int8"
    workers: int = 2  # baseline worker threads (one request at a time each)
    threads: int = 1  # intra-op threads per baseline worker
    server_threads: int = 0  # the server's intra-op threads; 0 = one per core


def _words(text: str) -> int:
    return len(text.split())


class _PoolVariant:
    name = ""

    def __init__(self, bundle: Bundle, setup: DecodeSetup):
        self.bundle, self.setup = bundle, setup
        self.pool = ThreadPoolExecutor(setup.workers, thread_name_prefix=f"bench-{self.name}")

    def _decode(self, text: str) -> tuple[int, int, float | None]:
        raise NotImplementedError

    async def call(self, text: str) -> tuple[int, int, float | None]:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._decode, text)

    async def stop(self) -> None:
        self.pool.shutdown(wait=True)


class TorchEager(_PoolVariant):
    """(a) The PyTorch reference decoder on the checkpoint, one request at a time per worker."""

    name = "torch-eager"

    def __init__(self, bundle: Bundle, setup: DecodeSetup, checkpoint: Path):
        super().__init__(bundle, setup)
        self.checkpoint = checkpoint

    async def start(self) -> None:
        # OpenMP threads that busy-wait after each op would steal the cores from the variants
        # that run after this one in the same process; read by OpenMP when torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch  # only this baseline needs torch

        from training.decode import DecodeConfig, decode
        from training.model import load_checkpoint

        torch.set_num_threads(self.setup.threads)
        self.model, _ = load_checkpoint(self.checkpoint)
        self._decode_fn, self._config = decode, DecodeConfig

    def _decode(self, text: str) -> tuple[int, int, float | None]:
        import torch

        # The intra-op thread count is per thread under OpenMP: set it in each worker.
        if torch.get_num_threads() != self.setup.threads:
            torch.set_num_threads(self.setup.threads)
        ids = self.bundle.src_tokenizer.encode(text)
        max_len = max_output_length(len(ids), self.bundle.max_length, self.bundle.max_length_ratio)
        config = self._config(beam_size=self.setup.beam_size, max_len=max_len, batch_size=1)
        best = self._decode_fn(self.model, [ids], config)[0][0]
        return len(best.tokens), _words(self.bundle.tgt_tokenizer.decode(best.tokens)), None


class OrtPerRequest(_PoolVariant):
    """(b) engine/decode.py: ONNX Runtime, one request's loop at a time per worker."""

    name = "ort-per-request"

    async def start(self) -> None:
        from engine.config import DecodeConfig
        from engine.decode import Decoder
        from engine.sessions import RunnerConfig

        config = RunnerConfig(intra_op_threads=self.setup.threads, precision=self.setup.precision)
        self.decoder, self._config = (
            Decoder.open(self.bundle, config),
            DecodeConfig(beam_size=self.setup.beam_size),
        )

    def _decode(self, text: str) -> tuple[int, int, float | None]:
        best = self.decoder.decode_ids(self.bundle.src_tokenizer.encode(text), self._config)[0]
        return len(best.tokens), _words(self.bundle.tgt_tokenizer.decode(best.tokens)), None


class InProcessScheduler:
    """The continuous-batching scheduler without gRPC, in this process (to split gRPC's cost)."""

    name = "scheduler-in-process"

    def __init__(self, bundle: Bundle, setup: DecodeSetup, max_rows: int = 128):
        self.bundle, self.setup, self.max_rows = bundle, setup, max_rows

    async def start(self) -> None:
        from benchmarks.serving.ort_cpu import OrtCpuMeter
        from engine.sessions import Runner, RunnerConfig
        from service.scheduler import Scheduler, SchedulerConfig

        config = RunnerConfig(intra_op_threads=self.setup.server_threads, precision=self.setup.precision)
        self.ort_meter = OrtCpuMeter(lambda: Runner.from_bundle(self.bundle, config))
        runner = self.ort_meter.runner
        runner.warm_up()
        limits = SchedulerConfig(max_rows=max(self.max_rows, self.setup.beam_size), max_queue=4096)
        self.scheduler = Scheduler(runner, limits)
        await self.scheduler.start()

    def ort_cpu_s(self) -> float:
        """CPU seconds ONNX Runtime has spent so far (the model's own share of the requests)."""
        return self.ort_meter.seconds()

    async def call(self, text: str) -> tuple[int, int, float | None]:
        from service.handle import DecodeRequest

        ids = self.bundle.src_tokenizer.encode(text)
        max_len = max_output_length(len(ids), self.bundle.max_length, self.bundle.max_length_ratio)
        request = DecodeRequest(ids, self.setup.beam_size, 1, max_len)
        best = (await self.scheduler.submit(request).result()).hypotheses[0]
        return len(best.tokens), _words(self.bundle.tgt_tokenizer.decode(best.tokens)), None

    async def stop(self) -> None:
        await self.scheduler.stop(grace=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GrpcServer:
    """(c) The s2s server over real gRPC: an `s2s serve` subprocess, or `target` if given."""

    name = "s2s-server"

    def __init__(
        self,
        bundle: Bundle,
        setup: DecodeSetup,
        stream: bool = False,
        target: str | None = None,
        max_rows=128,
        per_request: bool = False,
        engine: str = "thread",  # `s2s serve --engine`
    ):
        self.bundle, self.setup, self.stream, self.target = bundle, setup, stream, target
        self.engine = engine
        self.max_rows = max_rows
        # (b) served: the same server with batching off, `workers` loops of one request each, the
        # way a worker-pool server decodes; it pays the same gRPC path as (c).
        self.per_request = per_request
        self.process: subprocess.Popen | None = None
        if stream:
            self.name = "s2s-server-stream"
        if per_request:
            self.name = "server-per-request"
        if engine == "process":
            self.name = "s2s-server-process-stream" if stream else "s2s-server-process"

    async def start(self) -> None:
        from service.client import AsyncTranslatorClient

        if self.target is None:
            port = _free_port()
            self.target = f"127.0.0.1:{port}"
            self.process = subprocess.Popen(self._server_command(port), env=os.environ.copy())
            await self._wait_listening(port, 60)
        self.client = AsyncTranslatorClient(self.target, timeout=120)
        await self._wait_serving(60)

    def _server_command(self, port: int) -> list[str]:
        command = [sys.executable, "-m", "s2s.cli", "--log-level", "WARNING", "serve",
                   "--host", "127.0.0.1", "--port", str(port), "--metrics-port", "off",
                   "--bundle", str(self.bundle.path), "--precision", self.setup.precision,
                   "--max-rows", str(self.max_rows), "--max-queue", "4096"]  # fmt: skip
        if self.per_request:
            return command + ["--threads", str(self.setup.threads), "--decode-threads",
                              str(self.setup.workers), "--max-requests", "1"]  # fmt: skip
        return command + ["--threads", str(self.setup.server_threads), "--engine", self.engine]

    @property
    def server_pid(self) -> int | None:
        """The server subprocess whose CPU time the benchmark adds to its own; None if external."""
        return self.process.pid if self.process is not None else None

    async def _wait_listening(self, port: int, timeout: float) -> None:
        # A channel that finds the port closed backs off a second before it tries again: connect
        # first, so that a start-up timed from launch (benchmarks/offline_vs_opennmt.py) is the
        # server's, not the channel's backoff.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return
            except OSError:
                await asyncio.sleep(0.02)

    async def _wait_serving(self, timeout: float) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.client.channel)
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"s2s serve exited with {self.process.returncode}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"s2s server at {self.target} not SERVING after {timeout:.0f} s")
            await asyncio.sleep(0.05)

    async def call(self, text: str) -> tuple[int, int, float | None]:
        if not self.stream:
            best = (await self.client.translate_one(text, beam_size=self.setup.beam_size)).hypotheses[0]
            return len(best.token_ids), _words(best.text), None
        started, first = time.perf_counter(), None
        async for item in self.client.stream(text, beam_size=self.setup.beam_size):
            if first is None:
                first = time.perf_counter() - started
            result = item
        best = result.hypotheses[0]
        return len(best.token_ids), _words(best.text), first

    async def stop(self) -> None:
        await self.client.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class GrpcFloor(GrpcServer):
    """The gRPC floor: the same client against a Translator that answers with a canned
    translation and decodes nothing (benchmarks/serving/baseline_servers.py). What it costs per
    request is what any Python gRPC server pays on this machine before decoding a single token."""

    name = "grpc-floor"

    def _server_command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "benchmarks.serving.baseline_servers", "--kind", "floor",
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


class GrpcFloorLayers(GrpcFloor):
    """The floor behind the s2s server's metrics interceptor and call gate: the least any call
    through `s2s serve` can cost, decoding aside (the ceiling of docs/performance.md's budget)."""

    name = "grpc-floor-layers"

    def _server_command(self, port: int) -> list[str]:
        return super()._server_command(port) + ["--layers"]


class GrpcPool(GrpcServer):
    """(b) served the common way (benchmarks/serving/baseline_servers.py): a gRPC handler handing each
    request to `workers` threads that decode one request at a time with engine/decode.py."""

    name = "server-pool"

    def _server_command(self, port: int) -> list[str]:
        setup = self.setup
        return [sys.executable, "-m", "benchmarks.serving.baseline_servers", "--kind", "pool",
                "--bundle", str(self.bundle.path), "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(setup.workers), "--threads", str(setup.threads),
                "--precision", setup.precision]  # fmt: skip
