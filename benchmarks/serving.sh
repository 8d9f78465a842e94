#!/usr/bin/env bash
# The serving benchmarks of docs/performance.md, in one go (about 30 minutes on 2 cores).
#
#   benchmarks/serving.sh CHECKPOINT [LARGE_CHECKPOINT]
#
# Exports each checkpoint (fp32 + int8) into artifacts/bundles-bench/, then runs `s2s bench` on
# eng-fra's test split with every variant side by side, alternating, and `s2s bench-step`, writing
# JSON to benchmarks/results/serving/ and the sweep plot to docs/img/. Run it on a quiet machine:
# the ratios hold under load, the absolute numbers do not.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:?usage: benchmarks/serving.sh CHECKPOINT [LARGE_CHECKPOINT]}
LARGE=${2:-}
DATA=${DATA:-../shared/data/eng-fra.tsv}
OUT=benchmarks/results/serving
BUNDLES=artifacts/bundles-bench
S2S=${S2S:-.venv/bin/s2s}
mkdir -p "$OUT" docs/img

export_bundle() {  # checkpoint name -> bundle dir
  [ -d "$BUNDLES/$2/1" ] || "$S2S" export "$1" --out "$BUNDLES" --name "$2" --version 1 --quantize int8 >&2
  echo "$BUNDLES/$2/1"
}
B=$(export_bundle "$CKPT" engfra)
ALL=torch,ort,server-per-request,server

# Greedy: the concurrency sweep (table + plot), every variant.
"$S2S" bench --bundle "$B" --checkpoint "$CKPT" --inputs "$DATA" --variants $ALL \
  --concurrency 1,2,4,8,16,32,64,128 --duration 4 --rounds 2 --out "$OUT/greedy-sweep.json" \
  --plot docs/img/performance-greedy-sweep.png
# Beam 5 (a beam request holds 5 rows: 320 rows per step for 64 requests).
"$S2S" bench --bundle "$B" --checkpoint "$CKPT" --inputs "$DATA" --variants $ALL --beam 5 \
  --max-rows 320 --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/beam5.json"
# int8 graphs, greedy and beam 5 (no eager variant: PyTorch runs fp32).
"$S2S" bench --bundle "$B" --inputs "$DATA" --variants ort,server-per-request,server --precision int8 \
  --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/int8-greedy.json"
"$S2S" bench --bundle "$B" --inputs "$DATA" --variants ort,server-per-request,server --precision int8 \
  --beam 5 --max-rows 320 --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/int8-beam5.json"
# Streaming: time to first token.
"$S2S" bench --bundle "$B" --inputs "$DATA" --variants server-per-request,server,server-stream \
  --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/stream.json"
# The budget: CPU per request of every variant, the gRPC floor and ONNX Runtime's own share.
"$S2S" bench --bundle "$B" --checkpoint "$CKPT" --inputs "$DATA" --variants $ALL,sched,grpc-floor,server-pool \
  --concurrency 64 --duration 5 --rounds 2 --out "$OUT/budget.json"
# The decoder step against the MatMul ceiling.
"$S2S" bench-step --bundle "$B" --rows 1,8,64 --src-len 10 --out "$OUT/step.json"
"$S2S" bench-step --bundle "$B" --rows 1,8,64 --src-len 10 --precision int8 --out "$OUT/step-int8.json"

if [ -n "$LARGE" ]; then  # the larger model: hidden 512
  L=$(export_bundle "$LARGE" engfra-large)
  "$S2S" bench --bundle "$L" --checkpoint "$LARGE" --inputs "$DATA" --variants $ALL \
    --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/large-greedy.json"
  "$S2S" bench --bundle "$L" --inputs "$DATA" --variants ort,server-per-request,server --beam 5 \
    --max-rows 320 --concurrency 1,64 --duration 5 --rounds 2 --out "$OUT/large-beam5.json"
  "$S2S" bench --bundle "$L" --checkpoint "$LARGE" --inputs "$DATA" --variants $ALL,sched,grpc-floor,server-pool \
    --concurrency 64 --duration 5 --rounds 2 --out "$OUT/budget-large.json"
  "$S2S" bench-step --bundle "$L" --rows 1,8,64 --src-len 10 --out "$OUT/large-step.json"
fi
echo "results in $OUT/"
