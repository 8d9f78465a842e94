# syntax=docker/dockerfile:1.7
# s2s serving image, GPU: `s2s serve` on onnxruntime-gpu with the CUDA execution provider.
#
#   docker build -f deploy/docker/serve-gpu.Dockerfile -t s2s-serve-gpu:0.1.0 .   (repo root)
#   docker run --gpus all -p 50051:50051 -p 8000:8000 --read-only --tmpfs /tmp s2s-serve-gpu:0.1.0
#
# onnxruntime-gpu 1.31 needs CUDA 12.x and cuDNN 9: the cudnn-runtime base carries both (no
# compiler, no headers). Expected size: about 4.5 GB uncompressed, nearly all CUDA and cuDNN
# libraries of the base; s2s adds ~400 MB. Ubuntu 24.04's Python is 3.12 (s2s needs >= 3.11).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEBIAN_FRONTEND=noninteractive
# Distro packages follow the base image's snapshot; pin the base by digest to freeze them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY s2s ./s2s
COPY service ./service
# The pinned runtime dependencies from pyproject.toml with onnxruntime swapped for
# onnxruntime-gpu (both install the same `onnxruntime` module: never both at once).
RUN pip install "setuptools==84.2.1" "wheel==0.48.0" \
 && python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join([r for r in d['dependencies'] if not r.startswith('onnxruntime==')] \
+ d['optional-dependencies']['gpu']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps --no-build-isolation . \
 && python -m compileall -q /opt/venv \
 && python -c "import onnxruntime; assert 'CUDAExecutionProvider' in onnxruntime.get_available_providers()"

FROM ${CUDA_IMAGE} AS runtime
LABEL org.opencontainers.image.title="s2s-serve-gpu" \
      org.opencontainers.image.description="s2s gRPC translation server (ONNX Runtime, CUDA)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 s2s \
 && useradd --system --uid 10001 --gid s2s --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
# S2S_REQUIRE_PROVIDER: on a node without a usable GPU the server exits instead of quietly
# serving from the CPU, so the scheduler's placement mistake shows as a failing pod.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    S2S_HOST=0.0.0.0 \
    S2S_PORT=50051 \
    S2S_METRICS_PORT=8000 \
    S2S_PROVIDER=cuda \
    S2S_REQUIRE_PROVIDER=true \
    S2S_GRACE_PERIOD=10
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["s2s", "serve"]
