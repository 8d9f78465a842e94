#!/usr/bin/env bash
# An OpenNMT-py 3.5.1 venv for benchmarks/train_vs_opennmt.py, in artifacts/opennmt-venv.
#
# OpenNMT-py 3.5.1 asks for torch < 2.3; it runs on the pinned torch 2.13.0 CPU wheel that s2s uses
# (the reference figures in ../shared/guides/PERFORMANCE.md were measured that way), so it is
# installed without its torch pin. Its other dependencies come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-artifacts/opennmt-venv}
PYTHON=${PYTHON:-python3.11}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q --no-deps OpenNMT-py==3.5.1
# Its import pulls every transform module, so these are needed even for plain word-level training.
"$VENV/bin/pip" install -q configargparse pyyaml sacrebleu six "pyonmttok>=1.37,<2" spacy rapidfuzz \
  pyahocorasick fasttext-wheel "tensorboard>=2.3" flask waitress "ctranslate2>=4,<5"
"$VENV/bin/python" -c "import onmt.bin.train, torch; print('OpenNMT-py ready on torch', torch.__version__)"
