"""What the reliability scripts share: a real `s2s serve` process on loopback, its RSS, closed-loop
clients that honour RetryInfo, and the JSON + table every script writes.

Every script here is bounded (a fixed number of runs or seconds), loopback only, and writes
benchmarks/results/reliability/<name>.json; docs/reliability.md holds the table of results.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "reliability"
S2S = [sys.executable, "-m", "s2s.cli"]


def date_texts(n: int, seed: int = 0) -> list[str]:
    """Held-out sources of the shipped dates model (never trained on)."""
    sys.path.insert(0, str(ROOT))
    from training.dates import held_out_pairs

    pairs = held_out_pairs()
    rng = np.random.default_rng(seed)
    return [pairs[i][0] for i in rng.integers(0, len(pairs), n)]


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def children(pid: int) -> list[int]:
    """The direct children of `pid` (its engine processes, with `--engine process`)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and its children: a server's memory includes its engine processes'."""
    return rss_mb(pid) + sum(rss_mb(child) for child in children(pid))


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


@dataclass
class Server:
    """`s2s serve` as a child process; `port` is the gRPC port it printed."""

    args: Sequence[str] = ()
    log_path: Path = Path("/tmp/s2s-reliability.log")
    process: subprocess.Popen | None = None
    port: int = 0

    def start(self, timeout_s: float = 120) -> Server:
        self._log = self.log_path.open("w")
        command = [*S2S, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "off", *self.args]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True, env={**os.environ}
        )
        line = self.process.stdout.readline()
        match = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}\n{self.log_path.read_text()[-2000:]}")
        self.port = int(match.group(1))
        wait_serving(self.address, timeout_s)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = 60) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.signal(signal.SIGTERM)
        code = self.wait()
        self._log.close()
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_serving(address: str, timeout_s: float) -> float:
    """Seconds until health says SERVING."""
    started = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < timeout_s:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"{address} not SERVING after {timeout_s} s")


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay a refusal carries, or None."""
    status = rpc_status.from_call(error)
    retry = error_details_pb2.RetryInfo()
    for detail in status.details if status else []:
        if detail.Unpack(retry):
            return retry.retry_delay.ToNanoseconds() / 1e9
    return None


@dataclass
class Tally:
    """Outcomes of calls by status code name, with latencies of OK answers and of refusals."""

    codes: dict[str, int] = field(default_factory=dict)
    ok_latency_s: list[float] = field(default_factory=list)
    refusal_latency_s: list[float] = field(default_factory=list)

    def add(self, code: str, latency_s: float) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        if code == "OK":
            self.ok_latency_s.append(latency_s)
        elif code == "RESOURCE_EXHAUSTED":
            self.refusal_latency_s.append(latency_s)

    def summary(self, seconds: float) -> dict:
        return {
            "codes": dict(sorted(self.codes.items())),
            "ok_per_s": len(self.ok_latency_s) / seconds,
            "ok_p50_ms": percentile(self.ok_latency_s, 50),
            "ok_p99_ms": percentile(self.ok_latency_s, 99),
            "refusal_p99_ms": percentile(self.refusal_latency_s, 99),
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q) * 1000) if len(values) else None


def machine() -> dict:
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}  # fmt: skip


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    return path


def table(rows: list[dict], columns: Sequence[str]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
