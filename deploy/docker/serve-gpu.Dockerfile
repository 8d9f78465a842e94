# s2s serving image, GPU: `s2s serve` on onnxruntime-gpu with the CUDA execution provider.
#
#   scripts/build_images.sh serve-gpu      (podman or Docker; docs/deploy.md "Building the images")
#   docker build -f deploy/docker/serve-gpu.Dockerfile -t s2s-serve-gpu:0.1.0 .   (repo root)
#   docker run --gpus all -p 50051:50051 -p 8000:8000 --read-only --tmpfs /tmp s2s-serve-gpu:0.1.0
#
# onnxruntime-gpu 1.31 is built for CUDA 13 and cuDNN 9. Both come from NVIDIA's pip wheels
# through the package's own `cuda` and `cudnn` extras (the CUDA 13 runtime, cuBLAS, cuFFT, cuRAND,
# NVRTC and cuDNN for CUDA 13), so the base is the same Python image as the CPU server's and the
# CUDA version can only be the one this onnxruntime-gpu asks for. The node's driver must support
# CUDA 13.0 (R580 or newer); the NVIDIA container toolkit mounts its libcuda.so.1.
# Size: see docs/deploy.md (nearly all of it the CUDA and cuDNN libraries).
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The pinned runtime dependencies of pyproject.toml with onnxruntime swapped for
# onnxruntime-gpu[cuda,cudnn] (both install the same `onnxruntime` module: never both at once),
# in a layer of their own that a change to the code reuses (2.4 GB of downloads).
COPY pyproject.toml ./
RUN pip install "setuptools==84.2.1" "wheel==0.48.0" \
 && python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join([r for r in d['dependencies'] if not r.startswith('onnxruntime==')] \
+ [r.replace('onnxruntime-gpu==', 'onnxruntime-gpu[cuda,cudnn]==') for r in d['optional-dependencies']['gpu']]))" \
    > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python -m compileall -q /opt/venv
COPY README.md ./
COPY s2s ./s2s
COPY engine ./engine
COPY service ./service
COPY deploy/docker/check_cuda_libraries.py /opt/s2s/
# No `pip check`: s2s's metadata asks for `onnxruntime`, which onnxruntime-gpu replaces on purpose.
RUN pip install --no-deps --no-build-isolation . \
 && python -m compileall -q /opt/venv \
 && python -I -c "import importlib.util as u; \
assert u.find_spec('torch') is None and u.find_spec('benchmarks') is None, 'PyTorch or the benchmark in the image'"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="s2s-serve-gpu" \
      org.opencontainers.image.description="s2s gRPC translation server (ONNX Runtime, CUDA)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 s2s \
 && useradd --system --uid 10001 --gid s2s --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/s2s /opt/s2s
# LD_LIBRARY_PATH: where the provider library finds the CUDA 13 and cuDNN wheels' libraries.
# NVIDIA_*: what the container toolkit mounts (compute), and its refusal to start the container on
# a driver too old for CUDA 13. S2S_REQUIRE_PROVIDER: on a node without a usable GPU the server
# exits instead of quietly serving from the CPU, so a placement mistake shows as a failing pod.
# ORT_DISABLE_TELEMETRY: as in serve.Dockerfile (no device ID under $HOME, no uploads).
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0" \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    S2S_HOST=0.0.0.0 \
    S2S_PORT=50051 \
    S2S_METRICS_PORT=8000 \
    S2S_PROVIDER=cuda \
    S2S_REQUIRE_PROVIDER=true \
    S2S_GRACE_PERIOD=10
# The check that a GPU image can use its GPU: every CUDA library resolves here (in the final
# stage, with the LD_LIBRARY_PATH above), else the build fails.
RUN python /opt/s2s/check_cuda_libraries.py
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["s2s", "serve"]
