"""Parallel data: the Tatoeba/Anki pair reader and the standard split (training.pairs, re-exported
here), tokeniser files, and batches of padded tensors."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer, TokenizerError
from training.pairs import (  # noqa: F401 - re-exported: training.data has always offered them
    SPLIT_PERIOD,
    TEST_SLOT,
    VALID_SLOT,
    DataError,
    Pair,
    Splits,
    load_tokenizer,
    read_pairs,
    reversed_pairs,
    split_of,
    split_pairs,
)


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


def encode_pairs(
    pairs: Sequence[Pair],
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    dropout: float = 0.0,
    rng: random.Random | None = None,
) -> list[Example]:
    """Ids of every pair; `dropout` > 0 cuts BPE sides with BPE-dropout drawn from `rng`."""
    out = []
    for p in pairs:
        src = src_tok.encode(p.src, dropout, rng)
        if not src:
            raise DataError(f"line {p.line + 1}: source {p.src!r} has no tokens")
        out.append((src, tgt_tok.encode(p.tgt, dropout, rng)))
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
