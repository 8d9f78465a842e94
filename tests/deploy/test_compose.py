"""deploy/compose: docker-compose and the compose-spec schema accept the file, and it wires the
server, Prometheus and Grafana to the files in deploy/."""

from __future__ import annotations

import os

import pytest
import yaml
from deploy_tools import DEPLOY, find_tool, output, run

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
COMPOSE_GPU = COMPOSE.with_name("docker-compose.gpu.yml")
ENV = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}


@pytest.mark.tools
def test_docker_compose_config_accepts_it():
    result = run([find_tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"], env=ENV)
    assert result.returncode == 0, output(result)


@pytest.mark.tools
def test_docker_compose_refuses_to_start_grafana_without_an_admin_password():
    env = {k: v for k, v in ENV.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    result = run([find_tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"], env=env)
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr, output(result)


@pytest.mark.tools
def test_compose_spec_schema_accepts_it():
    result = run([find_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, output(result)


def test_services_start_in_order_with_healthchecks_limits_and_restarts():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"bundle", "s2s", "prometheus", "grafana"}
    for name, service in services.items():
        assert service["deploy"]["resources"]["limits"]["memory"], name
        if name == "bundle":  # a one-shot copy, like the Kubernetes init container
            assert service["restart"] == "no" and "healthcheck" not in service
            continue
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["restart"] == "unless-stopped", name
    assert services["s2s"]["depends_on"]["bundle"]["condition"] == "service_completed_successfully"
    assert services["prometheus"]["depends_on"]["s2s"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert services["s2s"]["healthcheck"]["test"] == ["CMD", "python", "-m", "service.healthcheck"]


def test_mounted_paths_exist_and_bundles_live_in_a_named_volume():
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):  # a directory beside the file
                assert (COMPOSE.parent / source).resolve().is_dir(), f"{name}: {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: {source} is not a named volume"
    assert "bundles:/models:ro" in compose["services"]["s2s"]["volumes"]
    assert "bundles:/models" in compose["services"]["bundle"]["volumes"]
    assert compose["services"]["s2s"]["environment"]["S2S_BUNDLE"] == "/models"
    prometheus_yml = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t for job in prometheus_yml["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    metrics_port = compose["services"]["s2s"]["environment"]["S2S_METRICS_PORT"]
    assert f"s2s:{metrics_port}" in targets


@pytest.mark.tools
def test_the_gpu_override_swaps_in_the_gpu_server_with_one_gpu_and_the_gpu_overlays_settings():
    result = run([find_tool("docker-compose"), "-f", str(COMPOSE), "-f", str(COMPOSE_GPU), "config"], env=ENV)
    assert result.returncode == 0, output(result)
    server = yaml.safe_load(result.stdout)["services"]["s2s"]  # same name: Prometheus scrapes it
    assert server["build"]["dockerfile"] == "deploy/docker/serve-gpu.Dockerfile"
    assert server["image"] == "s2s-serve-gpu:0.1.0"
    (device,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert (device["driver"], device["count"], device["capabilities"]) == ("nvidia", 1, ["gpu"])
    assert server["read_only"] is True and server["cap_drop"] == ["ALL"]  # the base's, kept
    overlay = dict(
        line.split("=", 1)
        for line in (DEPLOY / "k8s" / "overlays" / "gpu" / "server-gpu.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {key: server["environment"][key] for key in overlay} == overlay


@pytest.mark.tools
def test_compose_spec_schema_accepts_the_gpu_override():
    result = run([find_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_GPU)])
    assert result.returncode == 0, output(result)


COMPOSE_TLS = COMPOSE.with_name("docker-compose.tls.yml")


def test_the_tls_override_wires_certificates_tokens_and_the_health_port():
    result = run([find_tool("docker-compose"), "-f", str(COMPOSE), "-f", str(COMPOSE_TLS), "config"], env=ENV)
    assert result.returncode == 0, output(result)
    server = yaml.safe_load(result.stdout)["services"]["s2s"]
    env = server["environment"]
    # docker-compose 1.x prints volumes as SOURCE:TARGET:MODE
    [(source, target, mode)] = [v.split(":") for v in server["volumes"] if ":/etc/s2s/secrets" in v]
    assert mode == "ro" and source.endswith("/secrets")  # a directory: renewals are seen
    for name in ("S2S_TLS_CERT", "S2S_TLS_KEY", "S2S_TLS_CLIENT_CA", "S2S_AUTH_TOKENS"):
        assert env[name].startswith(target + "/"), name
    assert env["S2S_HEALTH_PORT"] != env["S2S_PORT"]  # the health check's plaintext port
    schema = run([find_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_TLS)])
    assert schema.returncode == 0, output(schema)
