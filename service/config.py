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

from engine.sessions import RunnerConfig
from service.admission import CallLimits
from service.limits import Limits
from service.scheduler import SchedulerConfig
from service.tls import TlsConfig

# What a request message may hold beyond its texts: options, the model's name and version,
# protobuf framing. Generous: model names are cut to 64 characters in errors, not here.
REQUEST_OVERHEAD_BYTES = 16 * 1024
UTF8_MAX_BYTES = 4  # bytes of one character at most


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
    max_attention_values: int = 1_000_000  # per call, when attention is asked for (Limits)
    grace_period_s: float = 10.0  # on SIGTERM: how long in-flight requests may take to finish
    warmup: bool = True  # run the graphs at a few batch sizes before reporting SERVING
    calls: CallLimits = field(default_factory=CallLimits)  # calls in progress at once, by kind
    # Largest request message accepted, in bytes; 0 = derived from max_texts x max_text_chars
    # (`max_receive_bytes_for`). gRPC refuses a bigger one before it is parsed: a 31 MiB message
    # of 16 million empty texts once cost 560 MB of RSS to parse before max_texts was checked.
    max_receive_bytes: int = 0
    tls: TlsConfig | None = None  # certificate, key, client CA (service/tls.py); None = plaintext
    health_port: int | None = None  # plaintext port answering gRPC health only (probes); None = off
    auth_tokens: Path | None = None  # bearer-token file (service/auth.py); None = no auth
    access_log: bool = False  # one "s2s.access" line per call: method, code, ms, model, texts, peer

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0..65535 or None (off), got {self.metrics_port}")
        if not (math.isfinite(self.grace_period_s) and self.grace_period_s >= 0):
            raise ValueError(f"grace_period_s must be >= 0, got {self.grace_period_s}")
        self.limits  # noqa: B018 - validates max_texts and max_text_chars now
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise ValueError(f"health_port must be 0..65535 or None (off), got {self.health_port}")
        if self.max_receive_bytes < 0:
            raise ValueError(f"max_receive_bytes must be >= 0 (0 = derived), got {self.max_receive_bytes}")

    @property
    def receive_limit(self) -> int:
        """The request size limit in bytes: the configured one, or what max_texts texts of
        max_text_chars characters need at most."""
        if self.max_receive_bytes:
            return self.max_receive_bytes
        per_text = self.max_text_chars * UTF8_MAX_BYTES + 8  # + field tag and length prefix
        return self.max_texts * per_text + REQUEST_OVERHEAD_BYTES

    @property
    def limits(self) -> Limits:
        return Limits(
            max_texts=self.max_texts,
            max_text_chars=self.max_text_chars,
            max_src_tokens=self.scheduler.max_src_tokens,
            max_beam=self.scheduler.max_beam,
            max_output_len=self.scheduler.max_output_len,
            max_attention_values=self.max_attention_values,
        )
