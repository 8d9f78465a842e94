"""deploy/grafana: the dashboard against Grafana's own TypeScript schema, and its provisioning."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from deploy_tools import DEPLOY, NODE_DIR, node_package, output, run

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# What issue 6 asks the dashboard to show, as words that must appear in panel titles.
REQUIRED_PANELS = [
    "request rate", "status code", "p50 / p95 / p99", "first token", "tokens per second",
    "rows per decoder step", "queue depth", "step time", "rejections", "cpu", "memory",
]  # fmt: skip


@pytest.mark.tools
@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_satisfies_grafana_schema(dashboard: Path, tmp_path: Path):
    tsc = node_package("typescript/bin/tsc")
    node_package("@grafana/schema/package.json")
    # `satisfies` type-checks the literal against Grafana's Dashboard type, unknown keys included.
    source = tmp_path / "dashboard.ts"
    source.write_text(
        "import { Dashboard } from '@grafana/schema';\n"
        f"export const dashboard = ({dashboard.read_text()}) satisfies Dashboard;\n"
    )
    os.symlink(NODE_DIR / "node_modules", tmp_path / "node_modules")
    result = run(
        ["node", str(tsc), "--noEmit", "--strict", "--skipLibCheck", "--target", "es2022",
         "--module", "esnext", "--moduleResolution", "bundler", str(source)]
    )  # fmt: skip
    assert result.returncode == 0, output(result)


def test_dashboard_shows_every_panel_issue_6_asks_for_with_model_and_version_variables():
    dashboard = json.loads((GRAFANA / "dashboards" / "s2s.json").read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    missing = [words for words in REQUIRED_PANELS if words not in titles]
    assert not missing, f"no panel for {missing}; titles: {titles}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "model", "version"} <= variables.keys()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["expr"].count("s2s_") and "process_" not in target["expr"]:
                assert "$model" in target["expr"] and "$version" in target["expr"], target["expr"]


def test_provisioning_points_at_the_provisioned_datasource_and_the_mounted_dashboards():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "s2s.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    dashboard = json.loads((GRAFANA / "dashboards" / "s2s.json").read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] in uids
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]}
    path = providers["providers"][0]["options"]["path"]
    assert path in mounts and mounts[path].endswith("grafana/dashboards"), (path, mounts)
    assert "http://prometheus:9090" in {d["url"] for d in datasources["datasources"]}
