# s2s serving image, CPU: `s2s serve` on ONNX Runtime. No torch, no benchmark, no build tools.
#
#   scripts/build_images.sh serve          (podman or Docker; docs/deploy.md "Building the images")
#   docker build -f deploy/docker/serve.Dockerfile -t s2s-serve:0.1.0 .      (from the repo root)
#   docker run -p 50051:50051 -p 8000:8000 --read-only --tmpfs /tmp s2s-serve:0.1.0
#
# Size: see docs/deploy.md (measured, with the Debian stand-in base: the base ~130 MB, onnxruntime,
# numpy, grpcio and the shipped bundle the rest). Pin the base by digest in your registry mirror;
# the tag below names the exact Python release. Fully qualified: podman resolves no short names.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The pinned runtime dependencies of pyproject.toml first, in a layer of their own: a change to
# the code reuses it (the build backend is pinned too: --no-build-isolation builds with these).
COPY pyproject.toml ./
RUN pip install "setuptools==84.2.1" "wheel==0.48.0" \
 && python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && python -m compileall -q /opt/venv
# Then only what serving needs: training/, export/ and benchmarks/ are left out by
# serve.Dockerfile.dockerignore (the CLIs skip their subcommands when absent). The last check
# fails the build when a context without the .dockerignore let the benchmark in (-I: the
# installed packages, not the sources in the working directory).
COPY README.md ./
COPY s2s ./s2s
COPY engine ./engine
COPY service ./service
RUN pip install --no-deps --no-build-isolation . \
 && pip check \
 && python -m compileall -q /opt/venv \
 && python -I -c "import sys, importlib.util as u, service.server; \
assert 'torch' not in sys.modules and u.find_spec('torch') is None, 'PyTorch in the serving image'; \
assert u.find_spec('benchmarks') is None, 'the benchmark in the serving image'"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="s2s-serve" \
      org.opencontainers.image.description="s2s gRPC translation server (ONNX Runtime, CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 s2s \
 && useradd --system --uid 10001 --gid s2s --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at build time, so a read-only root filesystem costs nothing at start.
# Config is S2S_* variables (s2s serve --help); these are the image defaults.
# ORT_DISABLE_TELEMETRY: ONNX Runtime's telemetry would try to persist a device ID under $HOME
# (/nonexistent, on a read-only root: a warning at every start) and to upload over HTTPS from a
# pod whose NetworkPolicy allows no egress.
ENV PATH=/opt/venv/bin:$PATH \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    S2S_HOST=0.0.0.0 \
    S2S_PORT=50051 \
    S2S_METRICS_PORT=8000 \
    S2S_PROVIDER=cpu \
    S2S_GRACE_PERIOD=10
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8000
# Asks the gRPC health service (torch-free probe in the package; no grpc_health_probe binary).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "service.healthcheck"]
# Exec form: the server is PID 1 and gets SIGTERM itself, then drains for S2S_GRACE_PERIOD.
ENTRYPOINT ["s2s", "serve"]
