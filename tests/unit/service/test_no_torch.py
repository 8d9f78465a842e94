"""The serving path (s2s/, service/) must not import torch: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

SERVING_MODULES = [
    "s2s.cli", "s2s.bundle", "s2s.search", "s2s.tokenizer", "s2s.v1.translator_pb2_grpc",
    "service.cli", "service.config", "service.server", "service.servicer", "service.registry",
    "service.scheduler", "service.runner", "service.client", "service.validation", "service.status",
    "service.responses", "service.metrics", "service.interceptor", "export.ort_decoder",
]  # fmt: skip


def test_serving_modules_import_without_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {SERVING_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from s2s.cli import build_parser\n"
        "build_parser()\n"  # every subcommand's parser, as `s2s --help` builds them
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, f'torch was imported: {loaded[:5]}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
