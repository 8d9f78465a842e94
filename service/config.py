"""The server's configuration: one frozen object built by `s2s serve` (service/cli.py) from options
and S2S_* environment variables, then passed down. Nothing below reads os.environ."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

PROVIDERS = ("cpu", "cuda")
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class Limits:
    """Per-request limits; requests beyond them get INVALID_ARGUMENT naming the field."""

    max_texts: int = 64  # texts in one Translate call
    max_text_chars: int = 2000  # characters per text, checked before tokenising
    max_src_tokens: int = 256  # source tokens per text (memory and step cost grow with it)
    max_beam: int = 16  # beam_size and n_best
    max_output_len: int = 512  # output tokens per hypothesis

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_text_chars", "max_src_tokens", "max_beam", "max_output_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"limit {name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunnerSettings:
    """How ONNX Runtime sessions are made (passed to service/runner.py)."""

    provider: str = "cpu"  # "cpu" | "cuda"
    require_provider: bool = False  # refuse to start instead of falling back to CPU
    threads: int = 0  # intra-op threads per session; 0 = ONNX Runtime's default (one per core)
    graph_optimization: str = "all"  # ONNX Runtime graph optimisation level

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, got {self.provider!r}")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(
                f"graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}, "
                f"got {self.graph_optimization!r}"
            )
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"  # all interfaces: containers are reached from outside
    port: int = 50051  # gRPC; 0 = pick a free port (logged and printed once bound)
    metrics_port: int | None = 8000  # Prometheus /metrics; 0 = free port; None = no exporter
    bundles: tuple[Path, ...] = ()  # bundle directories; empty = the model shipped in the package
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    limits: Limits = field(default_factory=Limits)
    # Continuous-batching knobs (service/scheduler.py SchedulerConfig, see scheduler_config()).
    max_rows: int = 64  # decoder rows per step, across requests
    max_queue: int = 256  # requests waiting to join; beyond it RESOURCE_EXHAUSTED
    max_batch_wait_ms: float = 0.0  # how long a step may wait for more requests to join
    grace_period_s: float = 10.0  # on SIGTERM: how long in-flight requests may take to finish
    warmup: bool = True  # run a few decodes per model before reporting SERVING

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0..65535 or None, got {self.metrics_port}")
        if not (math.isfinite(self.grace_period_s) and self.grace_period_s >= 0):
            raise ValueError(f"grace_period_s must be >= 0, got {self.grace_period_s}")
        if self.max_rows < 1 or self.max_queue < 1 or self.max_batch_wait_ms < 0:
            raise ValueError(
                "need max_rows >= 1, max_queue >= 1, max_batch_wait_ms >= 0; got "
                f"{self.max_rows}, {self.max_queue}, {self.max_batch_wait_ms}"
            )
