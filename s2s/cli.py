"""The one `s2s` command. Subcommands live with the package that does the work.

Each package's cli module is torch-free at import time: `s2s serve --help` must not load torch.
Every subcommand exits with one of the codes below (README "Exit codes").
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from s2s import __version__

# Exit codes of every subcommand. 2 is what argparse itself exits with on a bad flag, so a bad input
# file or value reads the same as a bad flag; 1 is what Python exits with on an uncaught exception.
EXIT_OK = 0
EXIT_FAILURE = 1  # the work ran and failed: export validation, an RPC error, an unexpected error
EXIT_USAGE = 2  # usage or input error: a bad flag or S2S_* value, a missing or unusable input file

# Modules whose add_commands() adds subparsers, each with set_defaults(func=...).
_COMMAND_MODULES = ("training.cli", "training.subword_cli", "export.cli", "service.cli")
# The module of each subcommand, so running one imports only its own: the other parsers' imports
# cost ~0.05 s of start-up that `s2s translate --input` pays on every file. The map is checked
# against what the modules register (tests/unit/s2s/test_command_parser.py).
_COMMAND_HOMES = {
    "train": "training.cli", "evaluate": "training.cli", "plot-attention": "training.cli",
    "plot-curves": "training.cli", "subword": "training.subword_cli", "export": "export.cli",
    "serve": "service.cli", "translate": "service.cli", "bench": "service.cli", "bench-step": "service.cli",
}  # fmt: skip


def command_in(argv: list[str]) -> str | None:
    """The subcommand `argv` names (its first word that is neither an option nor --log-level's
    value); None when it asks for help or the version first, or names none."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif word in ("-h", "--help", "--version"):
            return None
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand's parser; or, for a `command` this knows, only its own module's."""
    modules = (_COMMAND_HOMES[command],) if command in _COMMAND_HOMES else _COMMAND_MODULES
    parser = argparse.ArgumentParser(
        prog="s2s",
        description="Train, export and serve a sequence-to-sequence model with attention.",
    )
    parser.add_argument("--version", action="version", version=f"s2s {__version__}")
    parser.add_argument("--log-level", default="INFO", help="Python logging level [default: INFO]")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a package left out of a slim install
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.add_commands(sub)
    _describe_subcommands(sub)
    return parser


def _describe_subcommands(sub: argparse._SubParsersAction) -> None:
    """A subcommand registered with a one-line help but no description gets the help as its
    description, so `s2s COMMAND --help` always says what the command does."""
    for choice in sub._choices_actions:  # one per add_parser(help=...), in registration order
        parser = sub.choices[choice.dest]
        if not parser.description and choice.help:
            parser.description = choice.help[0].upper() + choice.help[1:] + "."


def main(argv: list[str] | None = None, *, script: bool = False) -> int:
    """Run one subcommand; its exit code. `script` (the `s2s` command itself, not a caller in
    the same process): a command that says it has closed everything it writes
    (`args.skip_teardown`) ends the process here, without the interpreter's teardown."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_in(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    code = int(args.func(args) or 0)
    if script and getattr(args, "skip_teardown", False):
        # Freeing ONNX Runtime's sessions and every module one object at a time took 0.15-0.2 s
        # after an offline job was done (6% of a 903-line beam-5 run); the OS frees it at once.
        # os._exit skips flushing, so flush here: the output file is closed by then.
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: the output did not all arrive, so do not say it did
            code = code or EXIT_FAILURE
        os._exit(code)
    return code


def script() -> None:
    """The `s2s` console script (and `python -m s2s.cli`)."""
    sys.exit(main(script=True))


if __name__ == "__main__":
    script()
