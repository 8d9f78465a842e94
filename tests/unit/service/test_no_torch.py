"""The serving path (s2s/, engine/, service/) must not import torch: checked in a fresh interpreter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import engine

SERVING_MODULES = [
    "s2s.cli", "s2s.bundle", "s2s.search", "s2s.tokenizer", "s2s.v1.translator_pb2_grpc",
    "service.cli", "service.config", "service.server", "service.servicer", "service.registry",
    "service.scheduler", "service.client", "service.validation", "service.status",
    "service.responses", "service.metrics", "service.interceptor", "service.engine_worker",
    "service.offline",
]  # fmt: skip
# Every module of the decode engine, whichever of them the server happens to import.
ENGINE_MODULES = [f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)]


def test_serving_modules_import_without_torch() -> None:
    assert "engine.step" in ENGINE_MODULES and "engine.sessions" in ENGINE_MODULES
    code = (
        "import importlib, sys\n"
        f"for name in {SERVING_MODULES + ENGINE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from s2s.cli import build_parser\n"
        "build_parser()\n"  # every subcommand's parser, as `s2s --help` builds them
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, f'torch was imported: {loaded[:5]}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_offline_translation_imports_no_grpc_or_protobuf() -> None:
    # `s2s translate --input` runs no client or server: gRPC's import was ~0.1 s of its start-up,
    # protobuf's (the generated messages) ~0.07 s.
    code = (
        "import sys\n"
        "import service.offline, service.translate_cli\n"
        "from s2s.cli import build_parser\n"
        "build_parser()\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] == 'grpc' or 'protobuf' in m or m.endswith('_pb2'))\n"
        "assert not loaded, f'imported: {loaded[:5]}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
