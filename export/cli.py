"""`s2s export CHECKPOINT --out DIR`: write a validated model bundle (torch-free at import time).

Heavy imports (torch, onnx) happen inside the command, so `s2s --help` and `s2s serve` never load
them. Every option has an S2S_EXPORT_* environment variable. Exit codes (s2s.cli): 2 for a bad
flag or input (not a checkpoint, a bad name or version, a bundle that exists without --force),
1 when the export ran and failed (its graphs do not match PyTorch, the bundle does not load).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from s2s.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from s2s.options import add_option

log = logging.getLogger(__name__)
_ENV = "S2S_EXPORT_"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to an ONNX model bundle (validated against PyTorch)",
        description=(
            "Write DIR/<name>/<version>/ with encoder.onnx, decoder_step.onnx and manifest.json. "
            "The graphs are validated with ONNX Runtime against the PyTorch model (names, dynamic "
            "axes, shapes at other sizes, log-probs within 1e-4) before anything is published; a "
            "failed export leaves nothing behind."
        ),
    )
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (.pt) written by `s2s train`")
    add_option(parser, "--out", env=_ENV + "OUT", type=Path, default=Path("bundles"),
               help="directory that receives <name>/<version>/")  # fmt: skip
    add_option(parser, "--name", env=_ENV + "NAME", default=None, shown_default="the checkpoint's name",
               help="model name")  # fmt: skip
    add_option(parser, "--version", env=_ENV + "VERSION", default="1",
               help="bundle version: letters, digits, '.', '_', '-'")  # fmt: skip
    add_option(parser, "--quantize", env=_ENV + "QUANTIZE", default=None, choices=["int8"],
               shown_default="off",
               help="also write dynamic-int8 graphs (variant 'int8', for CPU)")  # fmt: skip
    add_option(parser, "--fp16", env=_ENV + "FP16", default=False, flag_bool=True,
               help="also write fp16 graphs (variant 'fp16', for GPU execution providers)")  # fmt: skip
    add_option(parser, "--opset", env=_ENV + "OPSET", type=int, default=17,
               help="ONNX opset of the graphs")  # fmt: skip
    add_option(parser, "--optimization-level", env=_ENV + "OPTIMIZATION_LEVEL", default="extended",
               choices=["disable", "basic", "extended", "all"],
               help="ONNX Runtime level of the graphs saved as *.opt.onnx ('disable': none)")  # fmt: skip
    add_option(parser, "--fold", env=_ENV + "FOLD", default=True, flag_bool=True,
               help="take constant products into the step graph where they pay (same function, "
                    "fewer multiply-adds a step); --no-fold: the plain graph")  # fmt: skip
    add_option(parser, "--force", env=_ENV + "FORCE", default=False, flag_bool=True,
               help="replace an existing bundle of the same name and version")  # fmt: skip
    add_option(parser, "--max-length", env=_ENV + "MAX_LENGTH", type=int, default=128,
               help="default output-token cap recorded for the server")  # fmt: skip
    add_option(parser, "--max-length-ratio", env=_ENV + "MAX_LENGTH_RATIO", type=float, default=3.0,
               help="default cap of ceil(ratio * source tokens) recorded for the server")  # fmt: skip
    add_option(parser, "--progress", env=_ENV + "PROGRESS", default=True, flag_bool=True,
               help="show the export's stages as a progress bar on stderr (on a terminal only)")  # fmt: skip
    parser.set_defaults(func=_export_command)


def _export_command(args: argparse.Namespace) -> int:
    from export.errors import ExportError, ValidationError
    from export.exporter import ExportConfig, export_checkpoint, export_stages
    from s2s.bundle import BundleError
    from training import progress
    from training.model import CheckpointError

    try:
        config = ExportConfig(
            out_dir=args.out,
            name=args.name,
            version=args.version,
            quantize=args.quantize,
            fp16=args.fp16,
            opset=args.opset,
            optimization_level=args.optimization_level,
            force=args.force,
            fold=args.fold,
            max_length=args.max_length,
            max_length_ratio=args.max_length_ratio,
        )
        with progress.Stages(args.progress, export_stages(config), "export") as stages:
            bundle_dir = export_checkpoint(args.checkpoint, config, stages.start)
    except (ValidationError, BundleError) as exc:  # what it wrote is wrong: a failure, not the input
        print(f"s2s export: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (CheckpointError, ExportError) as exc:
        print(f"s2s export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(bundle_dir)
    return EXIT_OK
