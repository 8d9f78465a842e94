"""deploy/docker: hadolint on every Dockerfile, and the promises the serving images make."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from deploy_tools import DEPLOY, ROOT, deploy_files, find_tool, output, run

DOCKERFILES = deploy_files("*.Dockerfile")
SERVING = [DEPLOY / "docker" / "serve.Dockerfile", DEPLOY / "docker" / "serve-gpu.Dockerfile"]
# The compose test's Prometheus where no registry answers (scripts/stand_in_bases.sh).
STAND_IN_PROMETHEUS = ROOT / "scripts" / "stand-in" / "prometheus.Dockerfile"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    instructions = _instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


@pytest.mark.tools
@pytest.mark.parametrize("dockerfile", [*DOCKERFILES, STAND_IN_PROMETHEUS], ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path):
    result = run([find_tool("hadolint"), str(dockerfile)])
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize("dockerfile", SERVING, ids=lambda p: p.name)
def test_serving_image_runs_s2s_serve_in_exec_form_as_non_root_with_a_grpc_healthcheck(dockerfile: Path):
    stage = dict(_final_stage(dockerfile))
    # Exec form (a JSON array): the server is PID 1 and receives SIGTERM itself.
    assert json.loads(stage["ENTRYPOINT"]) == ["s2s", "serve"]
    assert stage["USER"].split(":")[0] not in ("root", "0")
    assert "service.healthcheck" in stage["HEALTHCHECK"] and "CMD [" in stage["HEALTHCHECK"]
    installs = " ".join(args for op, args in _instructions(dockerfile) if op == "RUN")
    assert not re.search(r"torch[=<> ]|\[train\]", installs), "the serving image installs no torch"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_and_have_their_own_dockerignore(dockerfile: Path):
    for op, args in _instructions(dockerfile):
        if op in ("FROM", "ARG") and ("IMAGE" in args or op == "FROM"):
            image = args.split("=", 1)[-1].split()[0]
            assert image.startswith("$") or re.search(r":\d", image), f"unpinned base {image}"
    if dockerfile.name != "bundle.Dockerfile":  # its context is a bundle directory, not the repo
        assert dockerfile.with_name(dockerfile.name + ".dockerignore").exists()


def test_gpu_image_gets_the_cuda_13_libraries_of_its_onnxruntime_gpu_and_checks_they_resolve():
    """onnxruntime-gpu 1.31 is built for CUDA 13: a CUDA 12 base made an image that built, passed
    `get_available_providers()` and could not start on any GPU. The CUDA and cuDNN libraries come
    from the package's own extras, the loader finds them, and the build checks that it does."""
    text = (DEPLOY / "docker" / "serve-gpu.Dockerfile").read_text()
    assert "onnxruntime-gpu[cuda,cudnn]==" in text and "nvidia/cuda:" not in text
    env = dict(_final_stage(DEPLOY / "docker" / "serve-gpu.Dockerfile"))["ENV"]
    assert "site-packages/nvidia/cu13/lib" in env and "site-packages/nvidia/cudnn/lib" in env
    assert 'NVIDIA_REQUIRE_CUDA="cuda>=13.0"' in env and "S2S_PROVIDER=cuda" in env
    runs = [args for op, args in _final_stage(DEPLOY / "docker" / "serve-gpu.Dockerfile") if op == "RUN"]
    assert any("check_cuda_libraries.py" in args for args in runs), "the check runs in the final stage"


def test_the_cuda_library_check_fails_where_the_provider_cannot_load():
    """Here (CPU onnxruntime) there is no CUDA provider library at all: the check must say so."""
    check = DEPLOY / "docker" / "check_cuda_libraries.py"
    result = run([sys.executable, str(check)])
    assert result.returncode == 1 and "libonnxruntime_providers_cuda.so" in result.stderr, output(result)
