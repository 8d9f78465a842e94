"""The server's configuration: one frozen object built by `s2s serve` (service/cli.py) from options
and S2S_* environment variables, then passed down. Nothing below reads os.environ.

Runner and scheduler settings are those modules' own dataclasses, carried as they are; the
per-request limits the servicer checks are derived from them in `ServerConfig.limits`, so a limit
is set in exactly one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from service.runner import RunnerConfig
from service.scheduler import SchedulerConfig


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
class ServerConfig:
    host: str = "0.0.0.0"  # all interfaces: containers are reached from outside
    port: int = 50051  # gRPC; 0 = pick a free port (logged and printed once bound)
    metrics_port: int | None = 8000  # Prometheus /metrics; 0 = free port; None = no exporter
    bundles: tuple[Path, ...] = ()  # bundle dirs or DIR/<name>/<version> trees; () = shipped model
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # provider, threads, optimisation
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # batching knobs, limits
    max_texts: int = 64  # texts in one Translate call
    max_text_chars: int = 2000  # characters per text, checked before tokenising
    grace_period_s: float = 10.0  # on SIGTERM: how long in-flight requests may take to finish
    warmup: bool = True  # run the graphs at a few batch sizes before reporting SERVING

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0..65535 or None (off), got {self.metrics_port}")
        if not (math.isfinite(self.grace_period_s) and self.grace_period_s >= 0):
            raise ValueError(f"grace_period_s must be >= 0, got {self.grace_period_s}")
        self.limits  # noqa: B018 - validates max_texts and max_text_chars now

    @property
    def limits(self) -> Limits:
        return Limits(
            max_texts=self.max_texts,
            max_text_chars=self.max_text_chars,
            max_src_tokens=self.scheduler.max_src_tokens,
            max_beam=self.scheduler.max_beam,
            max_output_len=self.scheduler.max_output_len,
        )
