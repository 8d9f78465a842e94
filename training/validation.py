"""What training measures on the validation split: the teacher-forced loss (early stopping and the
best checkpoint follow it) and greedy BLEU on a fixed sample (for the training curves only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from s2s.tokenizer import Tokenizer
from training.data import Batch, Example, Pair
from training.decode import DecodeConfig, decode
from training.evaluate import score
from training.loss import packed_loss
from training.model import Seq2Seq

BLEU_EXTRA_TOKENS = 5  # greedy outputs may run this much past the longest reference of the sample


@torch.no_grad()
def validation_loss(model: Seq2Seq, valid: list[Batch], device: torch.device) -> float:
    """Mean per-token NLL with full teacher forcing, in eval mode (no dropout, no smoothing)."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in valid:
        b = batch.to(device)
        total += packed_loss(model, b.src, b.src_lengths, b.tgt_in, b.tgt_out).item()
        tokens += b.num_tokens
    model.train()
    return total / max(tokens, 1)


class BleuSample(NamedTuple):
    sources: list[list[int]]  # source ids
    references: list[str]  # the raw target lines
    longest: int  # target pieces of the longest reference


def bleu_sample(examples: Sequence[Example], pairs: Sequence[Pair], size: int) -> BleuSample | None:
    """`size` validation pairs spread evenly over the split (pair files are often sorted by
    length, so the first ones would all be short); all of them when there are fewer."""
    if size <= 0 or not examples:
        return None
    picked = list(range(0, len(examples), max(1, len(examples) // size)))[:size]
    return BleuSample(
        [examples[i][0] for i in picked],
        [pairs[i].tgt for i in picked],
        max(len(examples[i][1]) for i in picked),
    )


@torch.no_grad()
def validation_bleu(model: Seq2Seq, sample: BleuSample, tgt_tok: Tokenizer) -> float:
    """Greedy corpus BLEU (sacrebleu defaults, as `s2s evaluate`) of the sample's outputs. Decoding
    draws no random numbers, so it leaves training's random state (and resume) untouched."""
    cfg = DecodeConfig(beam_size=1, max_len=sample.longest + BLEU_EXTRA_TOKENS, batch_size=128)
    results = decode(model, sample.sources, cfg)
    model.train()  # decode leaves the model in eval mode
    return score([tgt_tok.decode(r[0].tokens) for r in results], sample.references)[1]
