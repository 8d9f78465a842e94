"""Scores: exact match and sacrebleu on detokenised text; evaluation of a real (tiny) model."""

from __future__ import annotations

import pytest

from s2s.tokenizer import Tokenizer
from training.data import Pair
from training.decode import DecodeConfig
from training.evaluate import evaluate, score, split_pairs_of


def test_perfect_and_partial_scores() -> None:
    refs = ["Je suis là.", "Il fait beau aujourd'hui."]
    exact, bleu, chrf, signature = score(refs, refs)
    assert (exact, round(bleu, 6), round(chrf, 6)) == (100.0, 100.0, 100.0)
    assert "tok:13a" in signature
    exact, bleu, chrf, _ = score(["Je suis là.", "Il fait froid."], refs)
    assert exact == 50.0 and 0 < bleu < 100 and 0 < chrf < 100


def test_dates_test_split_is_the_fixed_held_out_set() -> None:
    pairs = split_pairs_of("dates", "test")
    assert len(pairs) == 2000 and pairs == split_pairs_of("dates", "test")


def test_evaluate_decodes_every_pair_in_order(tiny_model) -> None:
    tok = Tokenizer.build(["abcdefghi"], "char")
    model = tiny_model("lstm", "dot")  # vocabularies of 13 and 11 cover this tokenizer's ids
    pairs = [Pair("abc", "ab", 0), Pair("cba", "ba", 1), Pair("", "a", 2)]
    scores, hyps = evaluate(model, tok, tok, pairs, DecodeConfig(beam_size=2, max_len=4))
    assert scores.sentences == 3 and len(hyps) == 3 and scores.beam_size == 2
    assert all(len(h) <= 4 for h in hyps)
    assert scores.exact_match == pytest.approx(
        100.0 * sum(h == p.tgt for h, p in zip(hyps, pairs, strict=True)) / 3
    )
