"""Scores a checkpoint on a split: exact match, and sacrebleu corpus BLEU and chrF (default
settings: 13a tokenisation, chrF n=6 beta=2) of the detokenised output against the raw reference
lines, with greedy or beam-search decoding by the PyTorch reference decoder; optionally with the
server's replace_unk (s2s.unk) applied before detokenising, so its effect on the scores is measured."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sacrebleu

from s2s import unk
from s2s.search import Hypothesis
from s2s.tokenizer import UNK_ID, Tokenizer
from training import dates
from training.data import DataError, Pair, read_pairs, reversed_pairs, split_pairs
from training.decode import DecodeConfig, decode
from training.model import Seq2Seq


@dataclass
class Scores:
    split: str
    sentences: int
    beam_size: int
    length_penalty: float
    length_norm: str  # "gnmt" or "avg" (s2s.search.length_penalty)
    replace_unk: bool  # output <unk> replaced by the most-attended source word before scoring
    unk_tokens: int  # <unk> tokens in the best outputs, before any replacement
    unk_replaced: int  # how many of them replace_unk replaced
    exact_match: float  # % of outputs equal to the reference (after stripping)
    bleu: float  # sacrebleu corpus BLEU, 13a
    chrf: float  # sacrebleu corpus chrF
    seconds: float  # decoding time, model loaded
    words_per_s: float  # output words (whitespace-split) per second
    signature: str  # sacrebleu's BLEU signature, to say exactly how it was computed


def split_pairs_of(data: str, split: str, reverse: bool = False) -> list[Pair]:
    """The `split` ("test" or "valid") pairs of a task: 'dates' or a pair file (columns swapped
    with `reverse`, as the checkpoint was trained)."""
    if data == "dates":
        if split != "test":
            raise DataError("the dates task's fixed evaluation set is its 'test' split")
        return [Pair(s, t, -1) for s, t in dates.held_out_pairs()]
    pairs = read_pairs(data)
    splits = split_pairs(reversed_pairs(pairs) if reverse else pairs)
    if split not in ("test", "valid", "train"):
        raise DataError(f"unknown split {split!r}: test, valid or train")
    return getattr(splits, split)


def trained_reversed(checkpoint: dict) -> bool:
    """Whether the checkpoint was trained with `--reverse` (its pairs' columns swapped)."""
    return bool((checkpoint.get("train") or {}).get("config", {}).get("reverse", False))


def score(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, float, float, str]:
    """(exact match %, BLEU, chrF, BLEU signature) of detokenised outputs against raw references."""
    refs = [r.strip() for r in references]
    exact = 100.0 * sum(h.strip() == r for h, r in zip(hypotheses, refs, strict=True)) / max(len(refs), 1)
    bleu = sacrebleu.metrics.BLEU()
    bleu_score = bleu.corpus_score(list(hypotheses), [refs])
    chrf = sacrebleu.metrics.CHRF().corpus_score(list(hypotheses), [refs])
    return exact, bleu_score.score, chrf.score, str(bleu.get_signature())


def _output_text(
    hyp: Hypothesis, source_pieces: list[str], tgt_tok: Tokenizer, replace_unk: bool
) -> tuple[str, int]:
    """(detokenised text, <unk> tokens replaced) of a hypothesis."""
    if not replace_unk:
        return tgt_tok.decode(hyp.tokens), 0
    pieces, replaced = unk.output_pieces(hyp.tokens, hyp.attention, source_pieces, tgt_tok)
    return tgt_tok.join(tgt_tok.text_pieces(hyp.tokens, pieces)), sum(replaced)


def evaluate(
    model: Seq2Seq,
    src_tok: Tokenizer,
    tgt_tok: Tokenizer,
    pairs: Sequence[Pair],
    cfg: DecodeConfig,
    split: str = "test",
    replace_unk: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[Scores, list[str]]:
    """Decode every pair's source; returns the scores and the hypotheses, in pair order.
    replace_unk: replace each output <unk> by the source word it attends to most (s2s.unk).
    on_batch(n): called after each decoded batch of n sentences (a progress bar)."""
    sources = [src_tok.encode(p.src) or [UNK_ID] for p in pairs]
    if replace_unk:
        cfg = dataclasses.replace(cfg, keep_attention=True)
    tick = time.perf_counter()
    results = decode(model, sources, cfg, on_batch)
    seconds = time.perf_counter() - tick
    # The source as cut, as the server's validation cuts it: an unknown word is copied as written.
    outputs = [
        _output_text(r[0], src_tok.split(p.src), tgt_tok, replace_unk)
        for r, p in zip(results, pairs, strict=True)
    ]
    hyps = [text for text, _ in outputs]
    exact, bleu, chrf, sig = score(hyps, [p.tgt for p in pairs])
    words = sum(len(h.split()) for h in hyps)
    return (
        Scores(
            split=split,
            sentences=len(pairs),
            beam_size=cfg.beam_size,
            length_penalty=cfg.length_penalty,
            length_norm=cfg.length_norm,
            replace_unk=replace_unk,
            unk_tokens=sum(r[0].tokens.count(UNK_ID) for r in results),
            unk_replaced=sum(n for _, n in outputs),
            exact_match=round(exact, 2),
            bleu=round(bleu, 2),
            chrf=round(chrf, 2),
            seconds=round(seconds, 2),
            words_per_s=round(words / max(seconds, 1e-9), 1),
            signature=sig,
        ),
        hyps,
    )
