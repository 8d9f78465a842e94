# s2s training image: `s2s train`, `s2s evaluate`, `s2s export` with PyTorch (CPU wheels).
#
#   scripts/build_images.sh train          (podman or Docker; docs/deploy.md "Building the images")
#   docker build -f deploy/docker/train.Dockerfile -t s2s-train:0.1.0 .        (from the repo root)
#   docker build --build-arg TORCH_INDEX_URL=https://mirror.example/whl/cpu ...   (your mirror)
#   docker run --rm -v "$PWD/runs:/work/runs" -v "$PWD/data:/work/data:ro" s2s-train:0.1.0 \
#       train --help
#
# Size: see docs/deploy.md (torch CPU is most of it; onnx, matplotlib, numpy, ORT the rest).
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The index that serves torch's CPU wheels (PyPI's Linux torch is the multi-GB CUDA build); a
# mirror or a local file index where download.pytorch.org cannot be reached.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY s2s ./s2s
COPY engine ./engine
COPY service ./service
COPY training ./training
COPY export ./export
# torch alone first from the CPU wheel index (the default index's torch pulls ~3 GB of CUDA
# wheels), then the package with its pinned train extra: pip keeps the torch already there and
# brings torch's own small dependencies from the default index with the rest. compileall skips
# torch's own test helpers: one of them is Python 3.12 syntax.
RUN pip install --no-deps --index-url "$TORCH_INDEX_URL" "torch==2.13.0" \
 && pip install "setuptools==84.2.1" "wheel==0.48.0" \
 && pip install --no-build-isolation "./[train]" \
 && pip check \
 && python -m compileall -q -x '/torch/testing/_internal/' /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="s2s-train" \
      org.opencontainers.image.description="s2s training, evaluation and ONNX export (PyTorch, CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 s2s \
 && useradd --system --uid 10001 --gid s2s --create-home --home-dir /home/s2s \
      --shell /usr/sbin/nologin s2s \
 && mkdir -p /work/runs /work/data \
 && chown -R s2s:s2s /work
COPY --from=build /opt/venv /opt/venv
# MPLCONFIGDIR: matplotlib (attention plots) writes a font cache; keep it in the home dir.
# ORT_DISABLE_TELEMETRY: as in serve.Dockerfile (export validation runs ONNX Runtime).
ENV PATH=/opt/venv/bin:$PATH \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/home/s2s/.cache/matplotlib
USER 10001:10001
WORKDIR /work
VOLUME ["/work/runs"]
ENTRYPOINT ["s2s"]
CMD ["--help"]
