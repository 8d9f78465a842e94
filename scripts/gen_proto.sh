#!/usr/bin/env bash
# Regenerates the Python gRPC stubs in s2s/v1/ from proto/. Usage: scripts/gen_proto.sh [OUT_DIR]
# OUT_DIR defaults to the repository root; tests/unit/proto/test_stubs_fresh.py passes a temp dir
# and compares, so committed stubs can't go stale.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="python3"
cd "$root"
mkdir -p "$out/s2s/v1"
"$python" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/s2s/v1/translator.proto
# s2s/v1 is a package (the stubs import it as s2s.v1.translator_pb2).
[ -f "$out/s2s/v1/__init__.py" ] || echo '"""Generated gRPC stubs (scripts/gen_proto.sh); do not edit."""' > "$out/s2s/v1/__init__.py"
