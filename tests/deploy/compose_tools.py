"""deploy/compose brought up for real by the image tests (imported as `compose_tools`): a compose
project of its own name and free host ports, the stand-in images swapped in where the official
ones cannot be pulled, and everything it made removed at the end."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from image_tools import COMPOSE, Container, engine, free_port, pullable, run, stand_in, wait_for

COMPOSE_GPU = COMPOSE.with_name("docker-compose.gpu.yml")
# The images of the compose file that s2s does not build, and the stand-in of each.
STAND_INS = {"prometheus": "prometheus"}


@functools.cache
def compose_cli() -> list[str]:
    """podman-compose with podman; Docker's compose plugin, else docker-compose 1.x."""
    if engine() == "podman":
        return ["podman-compose"]
    if run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


def stand_in_override(directory: Path) -> list[Path]:
    """An override file naming the stand-ins of the images that cannot be pulled (none if all can)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    swaps = {
        service: {"image": stand_in(recipe)}
        for service, recipe in STAND_INS.items()
        if not pullable(services[service]["image"])
    }
    if not swaps:
        return []
    override = directory / "stand-ins.yml"
    override.write_text(yaml.safe_dump({"services": swaps}))
    return [override]


def _by_label(project: str) -> list[str]:
    return ["--filter", f"label=com.docker.compose.project={project}"]


@dataclass
class ComposeProject:
    name: str
    files: list[Path]
    # Free host ports for every published port (the compose file's *_HOST_PORT variables).
    env: dict[str, str] = field(
        default_factory=lambda: {
            "S2S_GRPC_HOST_PORT": str(free_port()),
            "S2S_METRICS_HOST_PORT": str(free_port()),
            "PROMETHEUS_HOST_PORT": str(free_port()),
            "GRAFANA_HOST_PORT": str(free_port()),
            "GRAFANA_ADMIN_PASSWORD": "test-only",
        }
    )

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return run(
            [*compose_cli(), "-p", self.name, *files, *args],
            timeout=timeout,
            cwd=COMPOSE.parent,
            env={**os.environ, **self.env},
        )

    def up(self, *services: str) -> subprocess.CompletedProcess[str]:
        return self.compose("up", "-d", *services)

    def fill_bundle_volume(self) -> None:
        """The bundle service first, to its exit: podman-compose 1.0 ignores depends_on conditions."""
        result = self.up("bundle")
        assert result.returncode == 0, result.stdout + result.stderr
        bundle = self.container("bundle")
        wait_for(lambda: bundle.inspect("{{.State.Status}}") == "exited", "the bundle copy", bundle.logs)
        assert bundle.inspect("{{.State.ExitCode}}") == "0", bundle.logs()

    def container(self, service: str) -> Container:
        listing = run(
            [
                engine(),
                "ps",
                "-a",
                *_by_label(self.name),
                "--filter",
                f"label=com.docker.compose.service={service}",
                "--format",
                "{{.Names}}",
            ]
        )
        names = listing.stdout.split()
        assert len(names) == 1, f"{service}: containers {names}"
        return Container(names[0])

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def remove(self) -> None:
        """`down`, then whatever it left (a container in a restart loop, volumes, the network)."""
        self.compose("down", "-v", "-t", "30")
        for kind, listing in (
            ("container", ["ps", "-aq"]),
            ("volume", ["volume", "ls", "-q"]),
            ("network", ["network", "ls", "-q"]),
        ):
            for item in run([engine(), *listing, *_by_label(self.name)]).stdout.split():
                run([engine(), *([kind] if kind != "container" else []), "rm", "-f", item])
