#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run it. Extra arguments go to
# pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The pinned CPU wheel first: a bare "torch" requirement would download the multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[train,dev]'
# promtool, a Prometheus server, hadolint, kubectl, kubernetes-validate... for tests/deploy and e2e.
bash scripts/install_tools.sh

exec .venv/bin/python -m pytest "$@"
