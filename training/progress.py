"""Progress on stderr for `s2s train`, `s2s evaluate` and `s2s export`, one rule for all three: a
bar is shown when the command's --progress is on (the default) and stderr is a terminal, so logs
redirected to a file, pipes and CI stay free of carriage-return redraws.

While a bar is on screen, log records must go through the bar's own write (it clears the bar,
prints the line, redraws the bar): written straight to stderr they land glued to the bar's text.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence


def shown(flag: bool) -> bool:
    """Whether a command with --progress `flag` draws bars."""
    return flag and sys.stderr.isatty()


def bar(flag: bool, total: int, desc: str, unit: str, **options):
    """A tqdm bar on stderr, or None when not shown(flag). Cleared when closed (leave=False)."""
    if not shown(flag):
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr, **options
    )


@contextlib.contextmanager
def logs_through_bars(flag: bool) -> Iterator[None]:
    """Route the root logger's console output through tqdm.write while bars may be shown."""
    if not shown(flag):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield


class Stages:
    """A bar over named stages (export: graphs, validation, variants, ...), as a context manager
    that also routes log records through it: `start(name)` counts the previous stage as done and
    names the one now running."""

    def __init__(self, flag: bool, names: Sequence[str], desc: str):
        self._flag, self._total, self._desc = flag, len(names), desc
        self._bar = None
        self._started = False
        self._logs = contextlib.ExitStack()

    def __enter__(self) -> Stages:
        self._logs.enter_context(logs_through_bars(self._flag))
        # No rate: "0.3 stage/s" says nothing; the running stage's name is the postfix.
        layout = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}"
        self._bar = bar(self._flag, self._total, self._desc, "stage", bar_format=layout)
        return self

    def start(self, name: str) -> None:
        if self._bar is None:
            return
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(name)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
        self._logs.close()
