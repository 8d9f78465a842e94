"""Pair files and tokeniser files, torch-free: the Tatoeba/Anki reader, the standard split and
`s2s subword train`'s JSON (read without torch; training.data re-exports everything here).

Pair files are `source<TAB>target[<TAB>attribution]`, one pair per line. The split is fixed so
results compare across tools: 0-based line i is test if i % 20 == 7, validation if i % 20 == 13,
else training. Bad data raises `DataError` naming the file and line.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from s2s.tokenizer import Tokenizer

SPLIT_PERIOD, TEST_SLOT, VALID_SLOT = 20, 7, 13  # line i: test if i % 20 == 7, valid if == 13


class DataError(ValueError):
    """Unusable training data; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Pair:
    src: str
    tgt: str
    line: int  # 0-based line in the file it came from (-1 for generated data)


@dataclass
class Splits:
    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]


def split_of(line: int) -> str:
    """Which split 0-based line `line` of a pair file belongs to."""
    slot = line % SPLIT_PERIOD
    return "test" if slot == TEST_SLOT else "valid" if slot == VALID_SLOT else "train"


def read_pairs(path: str | Path, normalization: str = "NFC") -> list[Pair]:
    """Every pair of a Tatoeba/Anki file, Unicode-normalised and stripped; attribution dropped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: file is empty, expected source<TAB>target lines")
    pairs = []
    for i, line in enumerate(lines):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{path}:{i + 1}: line has no tab, expected source<TAB>target: {line[:60]!r}")
        src, tgt = (_normalize(f, normalization) for f in fields[:2])
        if not src or not tgt:
            side = "source" if not src else "target"
            raise DataError(f"{path}:{i + 1}: empty {side} text")
        pairs.append(Pair(src, tgt, i))
    return pairs


def _normalize(text: str, form: str) -> str:
    text = text.strip()
    return text if form == "none" else unicodedata.normalize(form, text)


def reversed_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    """The pairs with source and target swapped (`--reverse`: Korean -> English from eng-kor)."""
    return [Pair(p.tgt, p.src, p.line) for p in pairs]


def split_pairs(pairs: Sequence[Pair]) -> Splits:
    """The standard split by line number (see module docstring)."""
    splits = Splits([], [], [])
    for pair in pairs:
        getattr(splits, split_of(pair.line)).append(pair)
    return splits


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokeniser file (`s2s subword train`'s JSON), any problem reported as a DataError."""
    path = Path(path)
    try:
        return Tokenizer.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DataError(f"{path}: tokeniser file not found") from None
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # JSON or TokenizerError
        raise DataError(f"{path}: not a tokeniser file: {exc}") from None
