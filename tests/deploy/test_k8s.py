"""deploy/k8s: each overlay built by kustomize passes kubernetes-validate --strict, the Operator
objects pass their CRD schemas, and the manifests keep the promises docs/deploy.md makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from deploy_tools import DEPLOY, NODE_DIR, find_tool, node_package, output, run

pytestmark = pytest.mark.tools

KUBERNETES_VERSIONS = ["1.30.0", "1.33.0"]  # oldest supported (preStop sleep) and a current one
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
CERT_MANAGER_KINDS = {"Certificate"}
VALIDATE_CRDS = Path(__file__).with_name("validate_crds.mjs")
HEALTH_SERVICE = "s2s.v1.Translator"


def _objects(build: list[dict], kind: str) -> list[dict]:
    return [o for o in build if o["kind"] == kind]


def _one(build: list[dict], kind: str) -> dict:
    (found,) = _objects(build, kind)
    return found


def _env(build: list[dict]) -> dict[str, str]:
    return _one(build, "ConfigMap")["data"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_overlay_passes_kubernetes_validate_strict(kustomize_builds, tmp_path: Path, version: str):
    validate = find_tool("kubernetes-validate")
    for overlay, build in kustomize_builds.items():
        manifest = tmp_path / f"{overlay}.yaml"
        manifest.write_text(yaml.safe_dump_all(build))
        result = run([validate, "--strict", "-k", version, str(manifest)])
        assert result.returncode == 0 and "ERROR" not in result.stdout + result.stderr, output(result)
        # Only the Operator's CRDs may go unchecked here (they are checked below).
        for line in (result.stdout + result.stderr).splitlines():
            if "Couldn't find schema" in line:
                assert any(f"kind {kind} " in line for kind in OPERATOR_KINDS | CERT_MANAGER_KINDS), line


def test_operator_objects_pass_their_crd_schemas(kustomize_builds):
    node_package("@kubernetes-models/prometheus-operator/package.json")
    node_package("@kubernetes-models/cert-manager/package.json")
    for overlay, build in kustomize_builds.items():
        objects = [o for o in build if o["kind"] in OPERATOR_KINDS | CERT_MANAGER_KINDS]
        assert {o["kind"] for o in objects} >= OPERATOR_KINDS, overlay
        result = run(["node", str(VALIDATE_CRDS), str(NODE_DIR / "node_modules")], input=json.dumps(objects))
        assert result.returncode == 0, f"{overlay}: {output(result)}"


def test_crd_validator_rejects_a_broken_service_monitor():
    node_package("@kubernetes-models/prometheus-operator/package.json")
    broken = yaml.safe_load((DEPLOY / "k8s" / "base" / "servicemonitor.yaml").read_text())
    broken["spec"]["endpoints"][0]["interval"] = 15  # the CRD wants a duration string
    result = run(["node", str(VALIDATE_CRDS), str(NODE_DIR / "node_modules")], input=json.dumps([broken]))
    assert result.returncode == 1 and "INVALID" in result.stdout, output(result)


def test_probes_are_native_grpc_on_the_health_service(kustomize_builds):
    for build in kustomize_builds.values():
        server = _one(build, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        # With TLS on, probes go to the plaintext health-only port (they cannot speak TLS).
        port = int(_env(build).get("S2S_HEALTH_PORT", _env(build)["S2S_PORT"]))
        assert ("S2S_TLS_CERT" in _env(build)) == (port != 50051)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert server[probe]["grpc"]["port"] == port, probe
        assert server["readinessProbe"]["grpc"]["service"] == HEALTH_SERVICE
        assert server["startupProbe"]["grpc"]["service"] == HEALTH_SERVICE


def test_termination_grace_covers_prestop_and_the_server_drain(kustomize_builds):
    for build in kustomize_builds.values():
        pod = _one(build, "Deployment")["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = float(_env(build)["S2S_GRACE_PERIOD"])
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5, (pre_stop, drain)


def test_pods_run_restricted(kustomize_builds):
    for build in kustomize_builds.values():
        pod = _one(build, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["enableServiceLinks"] is False  # service links would set S2S_PORT=tcp://...
        for container in pod["containers"] + pod["initContainers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert container["resources"]["limits"] and container["resources"]["requests"]


def test_services_select_the_pods_and_ports_exist(kustomize_builds):
    for build in kustomize_builds.values():
        template = _one(build, "Deployment")["spec"]["template"]
        ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
        services = {s["metadata"]["name"]: s for s in _objects(build, "Service")}
        assert services["s2s-headless"]["spec"]["clusterIP"] == "None"
        for service in services.values():
            assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
        monitor = _one(build, "ServiceMonitor")
        scraped = [
            s for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]  # fmt: skip
        assert [s["metadata"]["name"] for s in scraped] == ["s2s"], "scrape each pod exactly once"


def test_hpa_scales_on_inflight_requests_with_cpu_fallback(kustomize_builds):
    for build in kustomize_builds.values():
        metrics = _one(build, "HorizontalPodAutoscaler")["spec"]["metrics"]
        assert [m["type"] for m in metrics] == ["Pods", "Resource"]
        assert metrics[0]["pods"]["metric"]["name"] == "s2s_inflight_requests"
        assert metrics[1]["resource"]["name"] == "cpu"
    adapter = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    assert [r["name"]["as"] for r in adapter["rules"]["custom"]] == ["s2s_inflight_requests"]


def test_gpu_overlay_requests_a_gpu_on_gpu_nodes_with_the_cuda_provider(kustomize_builds):
    build = kustomize_builds["gpu"]
    pod = _one(build, "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "serve-gpu" in server["image"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert _env(build)["S2S_PROVIDER"] == "cuda"
    assert _env(kustomize_builds["cpu"])["S2S_PROVIDER"] == "cpu"


def test_network_policy_admits_only_grpc_from_clients_and_metrics_from_prometheus(kustomize_builds):
    for build in kustomize_builds.values():
        policy = _one(build, "NetworkPolicy")["spec"]
        assert [[p["port"] for p in rule["ports"]] for rule in policy["ingress"]] == [["grpc"], ["metrics"]]
        assert policy["egress"] == [] and "Egress" in policy["policyTypes"]


def test_the_secure_overlay_wires_tls_and_tokens_from_secrets_that_can_rotate(kustomize_builds):
    build = kustomize_builds["secure"]
    env = _env(build)
    pod = _one(build, "Deployment")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    certificate = _one(build, "Certificate")
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert (
        volumes["tokens"]["secret"]["secretName"] == "s2s-tokens"
        and not volumes["tokens"]["secret"]["optional"]
    )
    for name, variables in {
        "tls": ("S2S_TLS_CERT", "S2S_TLS_KEY", "S2S_TLS_CLIENT_CA"),
        "tokens": ("S2S_AUTH_TOKENS",),
    }.items():
        mount = mounts[name]
        assert mount["readOnly"] and "subPath" not in mount, "a subPath mount never sees a renewal"
        assert all(env[v].startswith(mount["mountPath"] + "/") for v in variables), (name, variables)
    assert any(p["containerPort"] == int(env["S2S_HEALTH_PORT"]) for p in server["ports"])
    # The health port is for the kubelet only: the network policy does not open it to clients.
    ingress_ports = [
        p["port"] for rule in _one(build, "NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]
    ]
    assert "health" not in ingress_ports and int(env["S2S_HEALTH_PORT"]) not in ingress_ports
    services = [p["targetPort"] for s in _objects(build, "Service") for p in s["spec"]["ports"]]
    assert "health" not in services
