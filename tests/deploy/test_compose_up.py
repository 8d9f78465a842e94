"""deploy/compose brought up for real (the bundle service, the server, Prometheus; Grafana has no
image or package here, its dashboard is checked against Grafana's schema in test_grafana.py):
the bundle image fills the "bundles" volume and the server serves the model from it, Prometheus
scrapes the server through the service name with the alert rules loaded, and a query returns the
server's request count after real traffic."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator

import pytest
import yaml
from compose_tools import COMPOSE, ComposeProject, stand_in_override
from deploy_tools import DEPLOY
from image_tools import build, compose_service, http_get, json_get, metric, wait_for

from service.client import TranslatorClient

pytestmark = [pytest.mark.images, pytest.mark.timeout(1500)]

CALLS = 5
TRANSLATE_OK = 'sum(grpc_server_handled_total{job="s2s",grpc_method="Translate",grpc_code="OK"})'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    # The images compose names are the ones the build script makes.
    assert build("serve") == compose_service("s2s")["image"]
    assert build("bundle") == compose_service("bundle")["image"]
    overrides = stand_in_override(tmp_path_factory.mktemp("compose"))
    project = ComposeProject(f"s2s-compose-test-{os.getpid()}", [COMPOSE, *overrides])
    try:
        project.fill_bundle_volume()
        result = project.up("s2s", "prometheus")
        assert result.returncode == 0, result.stdout + result.stderr
        project.container("s2s").wait_healthy()
        prometheus = project.container("prometheus")
        wait_for(lambda: prometheus.healthy(), "Prometheus ready (its health check)", prometheus.logs)
        yield project
    finally:
        project.remove()


def _prometheus(stack: ComposeProject, path: str) -> dict:
    return json_get(f"http://127.0.0.1:{stack.port('PROMETHEUS_HOST_PORT')}{path}")


def _query(stack: ComposeProject, promql: str) -> list[dict]:
    return _prometheus(stack, "/api/v1/query?query=" + urllib.parse.quote(promql))["data"]["result"]


def test_the_server_serves_the_bundle_that_the_bundle_image_put_in_the_volume(stack: ComposeProject):
    assert "loaded dates/1 from /models/dates/1" in stack.container("s2s").logs()
    with TranslatorClient(f"127.0.0.1:{stack.port('S2S_GRPC_HOST_PORT')}", timeout=30) as client:
        assert client.translate_one("Tuesday, 10 July 2007").text == "2007-07-10"
    metrics = http_get(f"http://127.0.0.1:{stack.port('S2S_METRICS_HOST_PORT')}/metrics")
    assert "s2s_model_info{build_version=" in metrics


def test_prometheus_scrapes_the_server_through_the_service_name(stack: ComposeProject):
    def s2s_targets() -> list[dict]:
        targets = _prometheus(stack, "/api/v1/targets")["data"]["activeTargets"]
        return [t for t in targets if t["labels"]["job"] == "s2s"]

    wait_for(
        lambda: [t["health"] for t in s2s_targets()] == ["up"],
        "the s2s target up",
        lambda: str(s2s_targets()) + stack.container("prometheus").logs(),
    )
    (target,) = s2s_targets()
    assert target["scrapeUrl"] == "http://s2s:8000/metrics", target


def test_prometheus_loads_every_alert_rule(stack: ComposeProject):
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    wanted = {rule.get("alert") or rule.get("record") for group in groups for rule in group["rules"]}
    loaded = _prometheus(stack, "/api/v1/rules")["data"]["groups"]
    assert {rule["name"] for group in loaded for rule in group["rules"]} == wanted


def test_a_query_returns_the_servers_request_count_after_traffic(stack: ComposeProject):
    with TranslatorClient(f"127.0.0.1:{stack.port('S2S_GRPC_HOST_PORT')}", timeout=30) as client:
        for _ in range(CALLS):
            assert client.translate_one("3 mars 1999").text == "1999-03-03"
    # The server's own count, at least this test's calls; Prometheus must come to the same number.
    served = metric(
        f"http://127.0.0.1:{stack.port('S2S_METRICS_HOST_PORT')}/metrics",
        "grpc_server_handled_total",
        grpc_method="Translate",
        grpc_code="OK",
    )
    assert served >= CALLS

    def queried() -> list[float]:
        return [float(series["value"][1]) for series in _query(stack, TRANSLATE_OK)]

    wait_for(lambda: queried() == [served], f"Prometheus counting {served} calls", lambda: str(queried()))
