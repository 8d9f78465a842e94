"""deploy/prometheus and every PromQL expression in deploy/, checked by promtool, and checked
against the metric names the server really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from deploy_tools import DEPLOY, ROOT, find_tool, output, run
from prometheus_client import generate_latest

from service.interceptor import GrpcServerMetricsInterceptor
from service.metrics import ServiceMetrics

pytestmark = pytest.mark.tools

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "s2s.json"
ADAPTER_VALUES = DEPLOY / "k8s" / "prometheus-adapter" / "values.yaml"
PROMETHEUS_RULE = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
# Exported by Prometheus itself, not by the server.
SYNTHETIC_SERIES = {"up"}


def _alert_groups() -> list[dict]:
    return yaml.safe_load(ALERTS.read_text())["groups"]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _adapter_queries() -> list[str]:
    rules = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    return [r["seriesQuery"] for r in rules] + [r["metricsQuery"] for r in rules]


def _concrete(expr: str) -> str:
    """Grafana and adapter templates replaced by values that keep the PromQL meaning."""
    for template, value in {
        "$__rate_interval": "1m",
        "<<.GroupBy>>": "namespace, pod",
        "<<.LabelMatchers>>": 'namespace="s2s", pod=~"s2s-.*"',
    }.items():
        expr = expr.replace(template, value)
    return re.sub(r"\$\w+", ".*", expr)  # $model, $version, $job: regex matchers get ".*"


def _exported_metric_names() -> set[str]:
    """Sample names in a scrape of a metrics registry wired as the server wires it."""
    metrics = ServiceMetrics(provider="cpu")
    metrics.model_observer("toy", "1", "00")
    GrpcServerMetricsInterceptor(metrics.registry).metrics.started.labels("s", "m", "unary")
    names = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_prometheus_config_is_valid_with_its_rule_files():
    result = run([find_tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, output(result)


def test_alert_rules_are_valid():
    result = run([find_tool("promtool"), "check", "rules", str(ALERTS)])
    assert result.returncode == 0, output(result)


def test_alert_unit_tests_pass():
    result = run([find_tool("promtool"), "test", "rules", str(PROMETHEUS / "alerts_test.yml")])
    assert result.returncode == 0 and "SUCCESS" in result.stdout, output(result)


def test_every_alert_has_a_unit_test_and_a_runbook_section():
    alerts = {r["alert"] for g in _alert_groups() for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", [])}
    assert alerts == tested, f"untested: {alerts - tested}; unknown: {tested - alerts}"
    assert {"S2SHighErrorRatio", "S2SHighLatencyP99", "S2SQueueSaturated", "S2SNoTrafficWhileReady",
            "S2STargetDown"} <= alerts  # fmt: skip
    headings = (ROOT / "docs" / "observability.md").read_text()
    for alert in alerts:
        assert f"### {alert}" in headings, f"docs/observability.md has no section for {alert}"


def test_prometheus_operator_rule_carries_the_same_groups_as_alerts_yml():
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["spec"]["groups"] == _alert_groups(), "copy deploy/prometheus/alerts.yml groups"


def test_dashboard_and_adapter_promql_parses(tmp_path: Path):
    # promtool parses PromQL only inside rule files: wrap each expression as a recording rule.
    exprs = _dashboard_exprs() + _adapter_queries()
    rules = [{"record": f"check:expr_{i}", "expr": _concrete(e)} for i, e in enumerate(exprs)]
    rule_file = tmp_path / "exprs.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    result = run([find_tool("promtool"), "check", "rules", str(rule_file)])
    assert result.returncode == 0, output(result)


def test_every_metric_queried_in_deploy_is_exported_by_the_server():
    exprs = [r["expr"] for g in _alert_groups() for r in g["rules"]] + _dashboard_exprs()
    exprs += _adapter_queries()
    queried = set()
    for expr in exprs:
        queried |= set(re.findall(r"\b((?:s2s|grpc_server|process)_[a-z_]+)\b", expr))
    queried -= SYNTHETIC_SERIES
    missing = queried - _exported_metric_names()
    assert not missing, f"deploy/ queries metrics the server does not export: {sorted(missing)}"
