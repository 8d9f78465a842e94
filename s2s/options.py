"""CLI option helpers: every option has help, a shown default and an S2S_* environment variable.

Precedence: command line > environment > default. Environment values are parsed with the option's
own type, so a bad S2S_PORT fails the same way a bad --port does.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

ENV_PREFIX = "S2S_"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false/1/0), got {text!r}")


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Any = str,
    env: str | None = None,
    choices: list[Any] | None = None,
    flag_bool: bool = False,
    shown_default: str | None = None,
) -> None:
    """Add `flag` reading `env` (default: S2S_<FLAG>) when not given on the command line.

    flag_bool=True makes a switch: `--flag` / `--no-flag`, env values true/false/1/0.
    shown_default: what the help says the default is, where the value itself would not tell
    (None means "the checkpoint's name", "off", ...); a None default without it reads "not set".
    """
    env = env or ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()
    dest = flag.lstrip("-").replace("-", "_")
    raw = os.environ.get(env)
    if shown_default is None:
        shown_default = "not set" if default is None else str(default)
    if flag_bool:
        value = _parse_bool(raw) if raw is not None else bool(default)
        parser.add_argument(
            flag,
            dest=dest,
            action=argparse.BooleanOptionalAction,
            default=value,
            help=f"{help} [env {env}; default: {shown_default}]",
        )
        return
    if raw is not None:
        try:
            value = type(raw)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"environment variable {env}={raw!r} is invalid: {exc}")
        if choices is not None and value not in choices:
            parser.error(f"environment variable {env}={raw!r} must be one of {choices}")
    else:
        value = default
    parser.add_argument(
        flag,
        dest=dest,
        type=type,
        default=value,
        choices=choices,
        help=f"{help} [env {env}; default: {shown_default}]",
    )
