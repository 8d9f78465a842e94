"""`s2s serve`, `s2s translate` and `s2s bench` (registered by s2s/cli.py through add_commands).

Torch-free and light at import: `s2s --help` builds every parser, so ONNX Runtime, gRPC and
matplotlib are imported inside the command functions. Every option also reads an S2S_*
environment variable (s2s/options.py); the parsed options become one frozen ServerConfig.
"""

from __future__ import annotations

import argparse
import importlib

from service.serve_cli import add_serve
from service.translate_cli import add_translate


def _add_bench(sub: argparse._SubParsersAction) -> None:
    """`s2s bench` and `s2s bench-step` live in benchmarks/serving/, outside the product; absent
    from the serving images."""
    try:
        bench = importlib.import_module("benchmarks.serving.cli")
    except ModuleNotFoundError as exc:
        if exc.name in ("benchmarks", "benchmarks.serving", "benchmarks.serving.cli"):
            return
        raise  # a dependency of the bench is missing: say so rather than hide the command
    bench.add_commands(sub)


def add_commands(sub: argparse._SubParsersAction) -> None:
    add_serve(sub)
    add_translate(sub)
    _add_bench(sub)
