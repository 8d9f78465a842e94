"""The `s2s` command builds only the parser of the subcommand it runs: the map from subcommand to
module must match what each module registers, or a subcommand would vanish."""

from __future__ import annotations

import argparse
import importlib

import pytest

from s2s.cli import _COMMAND_HOMES, _COMMAND_MODULES, build_parser, command_in


@pytest.mark.parametrize("module_name", _COMMAND_MODULES)
def test_each_subcommand_is_mapped_to_the_module_that_registers_it(module_name: str) -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module_name).add_commands(sub)
    mapped = {name for name, home in _COMMAND_HOMES.items() if home == module_name}
    assert set(sub.choices) == mapped


def test_a_subcommands_own_parser_parses_it_as_the_full_one_does() -> None:
    argv = ["--log-level", "WARNING", "translate", "--input", "f.txt", "--beam", "5"]
    assert command_in(argv) == "translate"
    own, full = build_parser("translate").parse_args(argv), build_parser().parse_args(argv)
    assert {k: v for k, v in vars(own).items() if k != "func"} == {
        k: v for k, v in vars(full).items() if k != "func"
    }


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["serve", "--port", "0"], "serve"),
        (["--log-level", "DEBUG", "export", "x.pt"], "export"),
        (["--log-level=DEBUG", "train"], "train"),
        (["--help", "serve"], None),
        (["--version"], None),
        ([], None),
        (["no-such-command"], "no-such-command"),  # the full parser then says what exists
    ],
)
def test_the_command_is_found_past_the_global_options(argv: list[str], command: str | None) -> None:
    assert command_in(argv) == command
