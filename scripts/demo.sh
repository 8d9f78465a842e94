#!/usr/bin/env bash
# The main job on a fresh machine: install the serving package (no torch), serve the bundled
# default model (dates -> ISO), and translate through a real gRPC client. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
log="$(mktemp)"
{ .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e .; } >"$log" 2>&1 \
  || { cat "$log" >&2; echo "demo: installing s2s failed" >&2; exit 1; }

export S2S_PORT="${S2S_PORT:-50051}" S2S_METRICS_PORT="${S2S_METRICS_PORT:-8000}"
.venv/bin/s2s serve &
server=$!
# SIGTERM drains in-flight requests, then the server exits 0.
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true' EXIT

for _ in $(seq 1 120); do
  .venv/bin/python -m service.healthcheck --timeout 1 >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "demo: the server exited during start-up" >&2; exit 1; }
  sleep 0.5
done

address="localhost:$S2S_PORT"
for text in "Tuesday, 10 July 2007" "10/07/07" "10 juil. 2007" "3 de marzo de 1999"; do
  printf '%-24s -> %s\n' "$text" "$(.venv/bin/s2s translate --server "$address" "$text")"
done
echo "beam 5, two best hypotheses with their scores:"
.venv/bin/s2s translate --server "$address" --beam 5 --n-best 2 "Mittwoch, 24. November 2026"
echo "streamed token by token under beam search:"
.venv/bin/s2s translate --server "$address" --beam 5 --stream "le 1er janvier 2000"
echo "demo: metrics at http://localhost:$S2S_METRICS_PORT/metrics; the server stops now."
