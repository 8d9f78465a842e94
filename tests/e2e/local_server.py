"""`s2s serve` (or any command) as a real child process on loopback ports, for the tests that check
what a container would run (imported as `local_server`).

The process always ends: `ServerProcess` is a context manager that sends SIGTERM, waits, and kills
what did not stop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90.0  # loading + warming the graphs on 2 shared cores


# Ports handed out below the kernel's ephemeral range (32768-60999 by default). A port the kernel
# picks with bind(0) is an ephemeral one, and any outgoing connection may take it as its source
# port before the child process binds it: seen in CI as "Address already in use" on 0.0.0.0.
_PORTS = range(20_000, 32_000)
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    """Whether `port` can be bound on every address a server may listen on (0.0.0.0 and ::)."""
    families = [(socket.AF_INET, "0.0.0.0")] + ([(socket.AF_INET6, "::")] if socket.has_ipv6 else [])
    for family, host in families:
        try:
            with socket.socket(family) as sock:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                continue  # no IPv6 on this host: nothing can hold the port there
            return False
    return True


def free_port() -> int:
    """A port free on every address a moment ago, outside the ephemeral range and not handed out
    before in this process (for programs that need a number up front)."""
    for port in random.sample(_PORTS, 200):
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port among 200 tried in {_PORTS}")


@dataclass
class ServerProcess:
    """A child process with its output captured in a file, so a failure can show it."""

    args: Sequence[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, init=False)

    def __enter__(self) -> ServerProcess:
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            list(self.args), env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait up to timeout_s, then SIGKILL; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def assert_running(self) -> None:
        assert self.process is not None and self.process.poll() is None, (
            f"{self.args[0]} exited with {self.process.returncode if self.process else None}:\n{self.log()}"
        )


def healthcheck(port: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The images' HEALTHCHECK command, run the way Docker runs it (with the container's env)."""
    probe_env = {**(env or os.environ), "S2S_PORT": str(port)}
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "service.healthcheck"],
        env=probe_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_serving(server: ServerProcess, port: int, env: dict[str, str] | None = None) -> None:
    """Poll the health probe until SERVING; fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        server.assert_running()
        if healthcheck(port, env).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"server not SERVING after {START_TIMEOUT_S} s:\n{server.log()}")


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, frozenset(labels)): value} from a real GET of a /metrics endpoint."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape_settled(url: str, timeout_s: float = 30.0) -> dict[tuple[str, frozenset], float]:
    """A scrape taken once every started call is also counted as handled. A client has its
    status a moment before the server's interceptor records it, so a scrape right after a call
    may miss that call. It blocks: for a server in another process or thread only (a server on
    the caller's event loop needs scrape_settled_async)."""
    deadline = time.monotonic() + timeout_s
    while True:
        scraped = scrape(url)
        started = sum(v for (n, _), v in scraped.items() if n == "grpc_server_started_total")
        handled = sum(v for (n, _), v in scraped.items() if n == "grpc_server_handled_total")
        if started == handled or time.monotonic() > deadline:
            return scraped
        time.sleep(0.01)


async def scrape_settled_async(url: str, timeout_s: float = 30.0) -> dict[tuple[str, frozenset], float]:
    """scrape_settled for a test whose server runs on the test's own event loop. The blocking
    wait would stall the very loop that must finish the calls still in flight, so a call a
    moment from its end stayed "started, never handled" for the whole 30 s: the CI flake of
    one call in twenty never counted."""
    deadline = time.monotonic() + timeout_s
    while True:
        scraped = await asyncio.to_thread(scrape, url)
        started = sum(v for (n, _), v in scraped.items() if n == "grpc_server_started_total")
        handled = sum(v for (n, _), v in scraped.items() if n == "grpc_server_handled_total")
        if started == handled or time.monotonic() > deadline:
            return scraped
        await asyncio.sleep(0.01)


def sample(scraped: dict, name: str, **labels: str) -> float:
    """The one sample named `name` whose labels include `labels` (sums if several match)."""
    wanted = set(labels.items())
    values = [v for (n, got), v in scraped.items() if n == name and wanted <= got]
    assert values, f"no sample {name}{labels}"
    return sum(values)
