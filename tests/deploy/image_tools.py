"""Helpers of the image tests (imported as `image_tools`): a container engine, the images built by
scripts/build_images.sh, and containers run the way compose and the Kubernetes manifests run them.

Everything is real: podman (or Docker where a daemon answers), the Dockerfiles, the stand-in bases
of scripts/stand_in_bases.sh where no registry can be reached. Where no engine can be made to run
the tests skip with the reason; in CI (CI=true: root, Debian, registries reachable) they fail.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import yaml
from deploy_tools import DEPLOY, ROOT
from prometheus_client.parser import text_string_to_metric_families

SCRIPTS = ROOT / "scripts"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
IN_CI = os.environ.get("CI") == "true"
BUILD_TIMEOUT_S = 1200  # a fresh machine: engine install, debootstrap of the base, pip downloads
# What the compose file and the Deployment impose (deploy/compose, deploy/k8s/base/deployment.yaml).
HARDENED = [
    "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
]  # fmt: skip
# {image: the build script's report line (name, seconds, MB)}, for the terminal summary.
BUILT: dict[str, str] = {}


def unavailable(reason: str) -> None:
    """Skip where no engine can run here; fail in CI, which must run these tests."""
    if IN_CI:
        pytest.fail(f"CI must run the image tests: {reason}")
    pytest.skip(reason)


def run(args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


@functools.cache
def engine() -> str:
    """`podman` or `docker`, installed and configured by scripts/install_container_engine.sh."""
    result = run(["bash", str(SCRIPTS / "install_container_engine.sh")], timeout=600)
    if result.returncode != 0:
        unavailable(f"no container engine runs here: {result.stderr.strip()[-500:]}")
    return result.stdout.strip().splitlines()[-1]


@functools.cache
def build(image: str) -> str:
    """Build one image with scripts/build_images.sh (at most once a session); its name."""
    result = run(
        ["bash", str(SCRIPTS / "build_images.sh"), image],
        timeout=BUILD_TIMEOUT_S,
        env={**os.environ, "ENGINE": engine()},
    )
    assert result.returncode == 0, f"building {image} failed:\n{result.stderr[-6000:]}"
    report = result.stdout.strip()
    name = report.split()[0]
    stand_in = "  (on a Debian stand-in base)" if "stand-in" in result.stderr else ""
    BUILT[name] = f"{report}{stand_in}"
    return name


def stand_in(name: str) -> str:
    """A stand-in image of scripts/stand_in_bases.sh (built once, then kept in the store)."""
    result = run(
        ["bash", str(SCRIPTS / "stand_in_bases.sh"), name],
        timeout=BUILD_TIMEOUT_S,
        env={**os.environ, "ENGINE": engine()},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip()


def pullable(image: str) -> bool:
    """The image is in the store or a registry gives it (never the case here: no registry)."""
    return run([engine(), "image", "inspect", image]).returncode == 0 or (
        run([engine(), "pull", "-q", image], timeout=600).returncode == 0
    )


def image_size_mb(image: str) -> int:
    return int(run([engine(), "image", "inspect", "--format", "{{.Size}}", image]).stdout) // 1_000_000


def wait_for(
    condition: Callable[[], bool], what: str, diagnose: Callable[[], str], limit_s: float = 120
) -> None:
    """Poll until `condition()`; fail with `diagnose()` (logs) if it never holds."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached in {limit_s} s:\n{diagnose()}")


@dataclass
class Container:
    """A container of this session's engine, addressed by name."""

    name: str

    def logs(self) -> str:
        result = run([engine(), "logs", self.name])
        return (result.stdout + result.stderr)[-6000:]

    def inspect(self, template: str) -> str:
        return run([engine(), "inspect", "--format", template, self.name]).stdout.strip()

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return run([engine(), "exec", self.name, *command])

    def healthy(self) -> bool:
        """The image's HEALTHCHECK: podman runs it on request (no systemd timers here); Docker
        runs it on its own schedule and reports the status."""
        if engine() == "podman":
            return run([engine(), "healthcheck", "run", self.name]).returncode == 0
        return self.inspect("{{.State.Health.Status}}") == "healthy"

    def wait_healthy(self) -> None:
        wait_for(self.healthy, f"{self.name} healthy", self.logs)

    def signal_and_wait(self, signal: str = "TERM") -> int:
        """Send the signal, wait for the container to exit; its exit code."""
        assert run([engine(), "kill", "--signal", signal, self.name]).returncode == 0, self.logs()
        result = run([engine(), "wait", self.name])
        return int(result.stdout.strip().splitlines()[-1])

    def remove(self) -> None:
        no_grace = ["-t", "0"] if engine() == "podman" else []  # docker rm -f kills at once anyway
        run([engine(), "rm", "-f", *no_grace, self.name])


def run_hardened(
    image: str, name: str, ports: dict[int, int], env: dict[str, str], mounts: Sequence[str] = ()
) -> Container:
    """`run -d` as compose and the Deployment do; ports {host port: container port} on 127.0.0.1;
    mounts as -v arguments."""
    args = [engine(), "run", "-d", "--name", name, *HARDENED]
    for mount in mounts:
        args += ["-v", mount]
    for host_port, container_port in ports.items():
        args += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    result = run([*args, image])
    assert result.returncode == 0, result.stderr
    return Container(name)


def files_in_image(image: str, *patterns: str) -> list[str]:
    """Paths in the image's filesystem matching any `find -path` pattern (callers include one that
    must match, so that a find that could not run is not taken for an empty answer)."""
    expression = " -o ".join(f"-path '{pattern}'" for pattern in patterns)
    find = f"find / -xdev \\( {expression} \\) -print 2>/dev/null"
    return run([engine(), "run", "--rm", "--entrypoint", "sh", image, "-c", find]).stdout.split()


def json_get(url: str) -> dict:
    return json.loads(http_get(url))


def free_port() -> int:
    """A loopback port that was free a moment ago, to publish a container port on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compose_service(name: str) -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"][name]


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`, from a real scrape."""
    wanted = set(labels.items())
    values = [
        sample.value
        for family in text_string_to_metric_families(http_get(url))
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    ]
    assert values, f"no sample {name}{labels} at {url}"
    return sum(values)
