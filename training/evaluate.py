"""Scores a checkpoint on a split: exact match, and sacrebleu corpus BLEU and chrF (default
settings: 13a tokenisation, chrF n=6 beta=2) of the detokenised output against the raw reference
lines, with greedy or beam-search decoding by the PyTorch reference decoder."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import sacrebleu

from s2s.tokenizer import UNK_ID, Tokenizer
from training import dates
from training.data import DataError, Pair, read_pairs, split_pairs
from training.decode import DecodeConfig, decode
from training.model import Seq2Seq


@dataclass
class Scores:
    split: str
    sentences: int
    beam_size: int
    length_penalty: float
    length_norm: str  # "gnmt" or "avg" (s2s.search.length_penalty)
    exact_match: float  # % of outputs equal to the reference (after stripping)
    bleu: float  # sacrebleu corpus BLEU, 13a
    chrf: float  # sacrebleu corpus chrF
    seconds: float  # decoding time, model loaded
    words_per_s: float  # output words (whitespace-split) per second
    signature: str  # sacrebleu's BLEU signature, to say exactly how it was computed


def split_pairs_of(data: str, split: str) -> list[Pair]:
    """The `split` ("test" or "valid") pairs of a task: 'dates' or a pair file."""
    if data == "dates":
        if split != "test":
            raise DataError("the dates task's fixed evaluation set is its 'test' split")
        return [Pair(s, t, -1) for s, t in dates.held_out_pairs()]
    splits = split_pairs(read_pairs(data))
    if split not in ("test", "valid", "train"):
        raise DataError(f"unknown split {split!r}: test, valid or train")
    return getattr(splits, split)


def score(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, float, float, str]:
    """(exact match %, BLEU, chrF, BLEU signature) of detokenised outputs against raw references."""
    refs = [r.strip() for r in references]
    exact = 100.0 * sum(h.strip() == r for h, r in zip(hypotheses, refs, strict=True)) / max(len(refs), 1)
    bleu = sacrebleu.metrics.BLEU()
    bleu_score = bleu.corpus_score(list(hypotheses), [refs])
    chrf = sacrebleu.metrics.CHRF().corpus_score(list(hypotheses), [refs])
    return exact, bleu_score.score, chrf.score, str(bleu.get_signature())


def evaluate(
    model: Seq2Seq,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    pairs: Sequence[Pair],
    cfg: DecodeConfig,
    split: str = "test",
) -> tuple[Scores, list[str]]:
    """Decode every pair's source; returns the scores and the hypotheses, in pair order."""
    sources = [src_tok.encode(p.src) or [UNK_ID] for p in pairs]
    tick = time.perf_counter()
    results = decode(model, sources, cfg)
    seconds = time.perf_counter() - tick
    hyps = [tgt_tok.decode(r[0].tokens) for r in results]
    exact, bleu, chrf, sig = score(hyps, [p.tgt for p in pairs])
    words = sum(len(h.split()) for h in hyps)
    return (
        Scores(
            split,
            len(pairs),
            cfg.beam_size,
            cfg.length_penalty,
            cfg.length_norm,
            round(exact, 2),
            round(bleu, 2),
            round(chrf, 2),
            round(seconds, 2),
            round(words / max(seconds, 1e-9), 1),
            sig,
        ),
        hyps,
    )
