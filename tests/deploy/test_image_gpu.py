"""The GPU serving image built for real and the GPU compose override brought up (opt-in: the image
is 2.8 GB of CUDA 13 and cuDNN wheels and takes about 4 minutes to build, so CI leaves it out;
S2S_TEST_GPU_IMAGE=1 runs it, docs/deploy.md records a run).

Here no GPU exists: the CUDA libraries must resolve in the image all the same (only the driver's
libcuda.so.1 is missing, which the NVIDIA container toolkit mounts on a GPU node), and the server
must refuse to start rather than serve from the CPU. On a GPU node the same compose project serves
on CUDA."""

from __future__ import annotations

import os

import pytest
from compose_tools import COMPOSE, COMPOSE_GPU, ComposeProject, stand_in_override
from image_tools import build, engine, files_in_image, run, wait_for

pytestmark = [
    pytest.mark.images,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.environ.get("S2S_TEST_GPU_IMAGE") != "1",
        reason="the GPU image (2.8 GB, ~4 min to build) is opt-in: S2S_TEST_GPU_IMAGE=1",
    ),
]
CHECK = ["--entrypoint", "python"]
CHECK_SCRIPT = "/opt/s2s/check_cuda_libraries.py"
REFUSAL = "cannot start the server: CUDAExecutionProvider failed to initialise"


@pytest.fixture(scope="module")
def image() -> str:
    return build("serve-gpu")


def test_every_cuda_library_of_the_provider_resolves_in_the_image(image: str):
    result = run([engine(), "run", "--rm", *CHECK, image, CHECK_SCRIPT])
    assert result.returncode == 0 and "every library resolves" in result.stdout, result.stderr
    assert "built for CUDA 13" in result.stdout, result.stdout


def test_the_check_fails_when_the_loader_cannot_find_them(image: str):
    # The image's LD_LIBRARY_PATH emptied: what a CUDA-12 base with no CUDA 13 libraries looked like.
    result = run([engine(), "run", "--rm", "-e", "LD_LIBRARY_PATH=", *CHECK, image, CHECK_SCRIPT])
    assert result.returncode == 1 and "unresolved: libcublasLt.so.13" in result.stderr, result.stderr


def test_the_gpu_image_holds_no_torch_and_no_benchmark(image: str):
    found = files_in_image(
        image, "*/site-packages/torch", "*/site-packages/benchmarks", "*/site-packages/service"
    )
    assert [path.rsplit("/", 2)[-2:] for path in found] == [["site-packages", "service"]], found


def test_the_gpu_compose_server_serves_on_cuda_or_refuses_to_start(image: str, tmp_path):
    assert build("bundle")
    project = ComposeProject(
        f"s2s-compose-gpu-test-{os.getpid()}", [COMPOSE, COMPOSE_GPU, *stand_in_override(tmp_path)]
    )
    try:
        project.fill_bundle_volume()
        started = project.up("s2s")
        if started.returncode != 0:  # Docker without the NVIDIA runtime refuses the device request
            assert "nvidia" in (started.stdout + started.stderr).lower(), started.stdout + started.stderr
            return
        server = project.container("s2s")
        wait_for(lambda: REFUSAL in server.logs() or server.healthy(), "serving or refusing", server.logs)
        logs = server.logs()
        if REFUSAL in logs:
            # The only library missing is the driver's: the CUDA 13 and cuDNN ones were found.
            assert "libcuda.so.1: cannot open shared object file" in logs, logs
            assert "libcublasLt.so.13" not in logs and "libcudart.so.13" not in logs, logs
        else:
            assert "on cuda" in logs, logs
    finally:
        project.remove()
