"""Parallel data: the Tatoeba/Anki pair reader, the standard split, and batches of padded tensors.

Pair files are `source<TAB>target[<TAB>attribution]`, one pair per line. The split is fixed so
results compare across tools: 0-based line i is test if i % 20 == 7, validation if i % 20 == 13,
else training. Bad data raises `DataError` naming the file and line.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer, TokenizerError

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


def split_pairs(pairs: Sequence[Pair]) -> Splits:
    """The standard split by line number (see module docstring)."""
    splits = Splits([], [], [])
    for pair in pairs:
        getattr(splits, split_of(pair.line)).append(pair)
    return splits


def filter_length(pairs: Sequence[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer, max_len: int) -> list[Pair]:
    """Pairs whose source and target both have 1..max_len pieces. Used on training data only:
    test sets stay whole so scores compare with other tools."""
    return [
        p
        for p in pairs
        if 0 < len(src_tok.split(p.src)) <= max_len and 0 < len(tgt_tok.split(p.tgt)) <= max_len
    ]


def build_tokenizer(
    texts: Sequence[str], kind: str, min_freq: int, max_size: int | None, source: str, lowercase: bool = False
) -> Tokenizer:
    """Tokenizer.build, with an empty vocabulary reported as a DataError naming the data."""
    try:
        return Tokenizer.build(texts, kind, min_freq=min_freq, max_size=max_size, lowercase=lowercase)
    except TokenizerError as exc:
        raise DataError(f"{source}: {exc}") from exc


# -- tensors ------------------------------------------------------------------------------------
@dataclass
class Batch:
    src: torch.Tensor  # (B, T) int64 source ids, PAD_ID after each length
    src_lengths: torch.Tensor  # (B,) int64, >= 1
    tgt_in: torch.Tensor  # (B, U) int64: <bos> + target ids, padded
    tgt_out: torch.Tensor  # (B, U) int64: target ids + <eos>, padded
    num_tokens: int  # target tokens in the batch (eos included, padding excluded)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.src.to(device),
            self.src_lengths.to(device),
            self.tgt_in.to(device),
            self.tgt_out.to(device),
            self.num_tokens,
        )


Example = tuple[list[int], list[int]]  # (source ids, target ids), no specials


def encode_pairs(pairs: Sequence[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer) -> list[Example]:
    out = []
    for p in pairs:
        src = src_tok.encode(p.src)
        if not src:
            raise DataError(f"line {p.line + 1}: source {p.src!r} has no tokens")
        out.append((src, tgt_tok.encode(p.tgt)))
    return out


def pad(
    seqs: Sequence[Sequence[int]], prefix: Sequence[int] = (), suffix: Sequence[int] = ()
) -> torch.Tensor:
    """(N,) lists -> (N, max_len) int64 tensor padded with PAD_ID."""
    rows = [[*prefix, *s, *suffix] for s in seqs]
    width = max(len(r) for r in rows)
    # One tensor from padded lists: a tensor per row cost more than the rest of the collation.
    return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows], dtype=torch.int64)


def collate(examples: Sequence[Example]) -> Batch:
    src = pad([s for s, _ in examples])
    lengths = torch.tensor([len(s) for s, _ in examples], dtype=torch.int64)
    tgt_in = pad([t for _, t in examples], prefix=[BOS_ID])
    tgt_out = pad([t for _, t in examples], suffix=[EOS_ID])
    return Batch(src, lengths, tgt_in, tgt_out, int((tgt_out != PAD_ID).sum()))


def batches(
    examples: Sequence[Example],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> list[Batch]:
    """Split examples into padded batches. With shuffle, examples of similar source length share a
    batch (less padding) and the batch order is random, all from `seed` (pass seed + epoch).
    Under DDP every rank gets the same number of batches: batch j goes to rank j % world_size."""
    order = list(range(len(examples)))
    if shuffle:
        rng = random.Random(seed)
        rng.shuffle(order)
        pool = batch_size * 50  # sort within pools of 50 batches: little padding, still random
        order = [
            i
            for s in range(0, len(order), pool)
            for i in sorted(order[s : s + pool], key=lambda i: len(examples[i][0]))
        ]
    groups = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(groups)
    usable = len(groups) - len(groups) % world_size if world_size > 1 else len(groups)
    if world_size > 1 and usable == 0:
        raise DataError(f"{len(examples)} examples make fewer batches than the {world_size} ranks")
    return [collate([examples[i] for i in g]) for g in groups[rank:usable:world_size]]
