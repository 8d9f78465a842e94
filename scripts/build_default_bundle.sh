#!/usr/bin/env bash
# Rebuild the shipped default bundle, s2s/bundles/dates/1, end to end with the project's own CLI:
# train on the built-in dates task, score it on the 2,000 held-out dates, export (validated
# against PyTorch; int8 and fp16 variants; atomic replace of the old bundle).
#
#   scripts/build_default_bundle.sh              # train (~5 min on 2 CPU cores), evaluate, export
#   SKIP_TRAIN=1 scripts/build_default_bundle.sh # re-export the existing checkpoint only
#
# Needs the training extras (pip install -e '.[train]' after torch, see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

S2S="${S2S:-.venv/bin/s2s}"
WORK="${WORK:-artifacts/dates}"          # checkpoint.pt, last.pt, train.log, eval.json
TIME_BUDGET="${TIME_BUDGET:-285}"        # seconds of training; 100% exact match on held-out dates
THREADS="${THREADS:-1}"                  # torch threads: 1 is fastest for this model on 2 cores
BUNDLES="${BUNDLES:-s2s/bundles}"        # the bundle lands in $BUNDLES/dates/1

if [ -z "${SKIP_TRAIN:-}" ]; then
  "$S2S" train --data dates --out "$WORK" --name dates --seed 1234 \
    --time-budget "$TIME_BUDGET" --threads "$THREADS" --no-progress
fi
"$S2S" evaluate --checkpoint "$WORK/checkpoint.pt" --beam-sizes 1,5 --threads "$THREADS" \
  --output "$WORK/eval.json"
"$S2S" export "$WORK/checkpoint.pt" --out "$BUNDLES" --name dates --version 1 \
  --quantize int8 --fp16 --force
du -sh "$BUNDLES/dates/1"
