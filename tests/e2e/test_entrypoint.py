"""What the containers would run, run here (issue 7): the serving image's entrypoint, `s2s serve`,
as a local process with the environment the image, the compose service and the Kubernetes
Deployment set; it must pass the image's HEALTHCHECK, translate, export metrics and drain on
SIGTERM. No Docker engine or cluster exists here, so this is as close as a test gets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import yaml
from local_server import VENV_BIN, ServerProcess, free_port, healthcheck, sample, scrape, wait_serving

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHIPPED_BUNDLES = ROOT / "s2s" / "bundles"  # what the bundle image's init container copies
SOURCE, EXPECTED = "Tuesday, 10 July 2007", "2007-07-10"  # the shipped dates model's task


def image_entrypoint_and_env(dockerfile: Path) -> tuple[list[str], dict[str, str]]:
    """ENTRYPOINT and ENV of the final stage of a Dockerfile (ENV KEY=VALUE form, as ours use)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    final_stage = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", final_stage, re.MULTILINE).group(1))
    env.pop("PATH")  # /opt/venv/bin in the image: the project venv here
    return entrypoint, env


def compose_env() -> dict[str, str]:
    service = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())["services"]["s2s"]
    env = {key: str(value) for key, value in service["environment"].items()}
    assert not any("${" in value for value in env.values()), "interpolate before using the values"
    return env


def _env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def deployment_env(overlay: str = "cpu") -> dict[str, str]:
    """The ConfigMap the Deployment's envFrom reads: kustomize builds it from base/server.env,
    merged with the GPU overlay's server-gpu.env there."""
    env = _env_file(DEPLOY / "k8s" / "base" / "server.env")
    if overlay == "gpu":
        env.update(_env_file(DEPLOY / "k8s" / "overlays" / "gpu" / "server-gpu.env"))
    return env


def container_env(dockerfile: str, platform_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The image's ENV under the platform's, with this machine's venv, bundles and free ports."""
    _, env = image_entrypoint_and_env(DEPLOY / "docker" / dockerfile)
    env.update(platform_env)
    if "S2S_BUNDLE" in env:  # Kubernetes: the init container's `cp -R /bundles/. /models/`
        models = tmp_path / "models"
        shutil.copytree(SHIPPED_BUNDLES, models)
        env["S2S_BUNDLE"] = str(models)
    # The container's ports are its own; here they must not collide with anything else.
    env.update(S2S_PORT=str(free_port()), S2S_METRICS_PORT=str(free_port()))
    env["PATH"] = f"{VENV_BIN}:/usr/bin:/bin"
    return env


def translate(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = pb_grpc.TranslatorStub(channel).Translate(pb.TranslateRequest(texts=[SOURCE]), timeout=30)
    return response.results[0].hypotheses[0].text


@pytest.mark.parametrize("platform", ["compose", "kubernetes"])
def test_serving_entrypoint_serves_with_the_platform_environment(platform: str, tmp_path: Path):
    entrypoint, _ = image_entrypoint_and_env(DEPLOY / "docker" / "serve.Dockerfile")
    env = container_env(
        "serve.Dockerfile", compose_env() if platform == "compose" else deployment_env(), tmp_path
    )
    port, metrics_url = int(env["S2S_PORT"]), f"http://127.0.0.1:{env['S2S_METRICS_PORT']}/metrics"
    command = [str(VENV_BIN / entrypoint[0]), *entrypoint[1:]]

    with ServerProcess(command, env=env, cwd=tmp_path, log_path=tmp_path / "server.log") as server:
        wait_serving(server, port, env)  # the image's HEALTHCHECK command, with the container env
        assert translate(port) == EXPECTED
        scraped = scrape(metrics_url)
        assert sample(scraped, "s2s_model_info", provider=env["S2S_PROVIDER"]) == 1
        assert sample(scraped, "grpc_server_handled_total", grpc_method="Translate", grpc_code="OK") == 1
        assert sample(scraped, "s2s_queue_capacity_rows") == int(env["S2S_MAX_QUEUE"])
        assert sample(scraped, "s2s_serving") == 1

        started = time.monotonic()
        status = server.stop(timeout_s=float(env["S2S_GRACE_PERIOD"]) + 10)
        assert status == 0, f"exit status {status} on SIGTERM:\n{server.log()}"
        assert time.monotonic() - started < float(env["S2S_GRACE_PERIOD"]) + 5
    assert healthcheck(port, env).returncode == 1  # and the probe sees it gone


def test_gpu_entrypoint_serves_on_cuda_or_refuses_to_start_without_it(tmp_path: Path):
    """The GPU image with the GPU overlay's env: on a machine whose onnxruntime has CUDA it serves;
    anywhere else it must exit with a clear error instead of quietly decoding on the CPU."""
    import onnxruntime

    entrypoint, _ = image_entrypoint_and_env(DEPLOY / "docker" / "serve-gpu.Dockerfile")
    env = container_env("serve-gpu.Dockerfile", deployment_env("gpu"), tmp_path)
    assert env["S2S_PROVIDER"] == "cuda" and env["S2S_REQUIRE_PROVIDER"] == "true"
    command = [str(VENV_BIN / entrypoint[0]), *entrypoint[1:]]
    with ServerProcess(command, env=env, cwd=tmp_path, log_path=tmp_path / "server.log") as server:
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            wait_serving(server, int(env["S2S_PORT"]), env)
            scraped = scrape(f"http://127.0.0.1:{env['S2S_METRICS_PORT']}/metrics")
            assert sample(scraped, "s2s_model_info", provider="cuda") == 1
            return
        status = server.process.wait(timeout=60)
        assert status != 0 and "CUDAExecutionProvider" in server.log(), server.log()


def test_training_entrypoint_lists_the_training_commands(tmp_path: Path):
    pytest.importorskip("torch", reason="the training image has torch; install .[train]")
    text = re.sub(r"\\\n", " ", (DEPLOY / "docker" / "train.Dockerfile").read_text())
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.*)$", text, re.MULTILINE)[-1])
    command = json.loads(re.findall(r"^CMD (.*)$", text, re.MULTILINE)[-1])
    result = subprocess.run(
        [str(VENV_BIN / entrypoint[0]), *entrypoint[1:], *command],
        cwd=tmp_path,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for subcommand in ("train", "evaluate", "export"):
        assert re.search(rf"^\s+{subcommand}\s", result.stdout, re.MULTILINE), result.stdout
