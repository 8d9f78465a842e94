"""The one `s2s` command. Subcommands live with the package that does the work.

Each package's cli module is torch-free at import time: `s2s serve --help` must not load torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from s2s import __version__

# (module, function that adds its subparsers). Each adds parsers with set_defaults(func=...).
_COMMAND_MODULES = ("training.cli", "export.cli", "service.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2s",
        description="Train, export and serve a sequence-to-sequence model with attention.",
    )
    parser.add_argument("--version", action="version", version=f"s2s {__version__}")
    parser.add_argument("--log-level", default="INFO", help="Python logging level [default: INFO]")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a package left out of a slim install
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
