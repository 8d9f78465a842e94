"""Example inputs: the one that traces each graph, and the differently shaped ones that check it.

Checking at the export example's own shapes proves little: a size the tracer froze into the graph
still matches there. So validation uses batch sizes and source lengths that differ from the
example's (EXPORT_BATCH, EXPORT_SRC_LEN), including a batch with padding and a length-1 source.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

EXPORT_BATCH = 3
EXPORT_SRC_LEN = 9
EXPORT_LENGTHS = (9, 5, 7)  # unsorted on purpose: the graph must not assume sorted lengths
EXPORT_K = 4
FIRST_REAL_ID = 4  # ids below are <pad> <bos> <eos> <unk>


@dataclass(frozen=True)
class CheckCase:
    """A source batch for validation: its lengths (batch = len(lengths), T = max) and the k."""

    lengths: tuple[int, ...]
    k: int

    @property
    def name(self) -> str:
        return f"batch={len(self.lengths)},src_len={max(self.lengths)},k={self.k}"


# Shapes that differ from the export example in every dynamic axis.
CHECK_CASES = (
    CheckCase(lengths=(12, 4), k=1),
    CheckCase(lengths=(1,), k=2),
    CheckCase(lengths=(5, 17, 3, 17, 8), k=6),
)


def source_batch(
    lengths: tuple[int, ...], vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(src_ids (B, T) with <pad> after each length, src_lengths (B,)), ids drawn at random."""
    T = max(lengths)
    ids = torch.randint(FIRST_REAL_ID, vocab_size, (len(lengths), T), generator=generator)
    lens = torch.tensor(lengths, dtype=torch.int64)
    ids[torch.arange(T)[None, :] >= lens[:, None]] = 0
    return ids, lens


def encoder_example(vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return source_batch(EXPORT_LENGTHS, vocab_size, torch.Generator().manual_seed(seed))


def decoder_step_example(model, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of one decoder step in DecoderStepGraph order, from a real encoder run."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    src, lengths = encoder_example(cfg.src_vocab_size, seed)
    with torch.no_grad():
        enc = model.encode(src, lengths)
    rows = src.size(0)
    prev = torch.randint(FIRST_REAL_ID, cfg.tgt_vocab_size, (rows,), generator=gen)
    feed = torch.randn(rows, cfg.hidden, generator=gen) * 0.5
    mask = model.source_mask(lengths, src.size(1))
    k = torch.tensor([min(EXPORT_K, cfg.tgt_vocab_size)], dtype=torch.int64)
    return (prev, *enc.state, feed, enc.memory, enc.keys, mask, k)
