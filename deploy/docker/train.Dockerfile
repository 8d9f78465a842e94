# syntax=docker/dockerfile:1.7
# s2s training image: `s2s train`, `s2s evaluate`, `s2s export` with PyTorch (CPU wheels).
#
#   docker build -f deploy/docker/train.Dockerfile -t s2s-train:0.1.0 .        (from the repo root)
#   docker run --rm -v "$PWD/runs:/work/runs" -v "$PWD/data:/work/data:ro" s2s-train:0.1.0 \
#       train --help
#
# Expected size: about 1.3 GB uncompressed (torch CPU ~800 MB, onnx, matplotlib, numpy, ORT).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY s2s ./s2s
COPY service ./service
COPY training ./training
COPY export ./export
# torch first from the CPU wheel index (the default index's torch pulls ~3 GB of CUDA wheels),
# then the package with its pinned train extra; pip keeps the torch already there.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
 && pip install "setuptools==84.2.1" "wheel==0.48.0" \
 && pip install --no-build-isolation "./[train]" \
 && python -m compileall -q /opt/venv

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
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/home/s2s/.cache/matplotlib
USER 10001:10001
WORKDIR /work
VOLUME ["/work/runs"]
ENTRYPOINT ["s2s"]
CMD ["--help"]
