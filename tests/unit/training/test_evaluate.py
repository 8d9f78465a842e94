"""Scores: exact match and sacrebleu on detokenised text; evaluation of a real (tiny) model, with and
without replace_unk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from s2s.tokenizer import UNK_ID, Tokenizer
from training.data import Pair
from training.decode import DecodeConfig, decode
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


SRC_WORDS = Tokenizer.build(["the cat sat"], "word")  # 7 ids: the tiny model's 13 cover them
TGT_WORDS = Tokenizer.build(["le chat assis"], "word")  # 7 ids of the tiny model's 11


def _biased(tiny_model, token: int, bias: float):  # type: ignore[no-untyped-def]
    """A tiny model whose output bias for `token` is `bias`: +100 makes it write only that token,
    -100 never. Its `general` scores are 300 times larger, so each attention row has a clear
    winner (seed 5: the first row attends to "the", the next two to "Zorg" in "the Zorg sat")."""
    model = tiny_model("lstm", "general", seed=5)
    with torch.no_grad():
        model.decoder.out.bias[token] = bias
        model.decoder.attention.key_proj.weight.mul_(300.0)
    return model


def test_replace_unk_changes_nothing_when_no_unk_is_written(tiny_model) -> None:
    model = _biased(tiny_model, UNK_ID, -100.0)
    pairs = [Pair("the cat sat", "le chat assis", 0), Pair("the Zorg", "le Zorg", 1), Pair("", "le", 2)]
    for beam in (1, 3):
        cfg = DecodeConfig(beam_size=beam, max_len=5)
        plain, plain_hyps = evaluate(model, SRC_WORDS, TGT_WORDS, pairs, cfg)
        replaced, replaced_hyps = evaluate(model, SRC_WORDS, TGT_WORDS, pairs, cfg, replace_unk=True)
        assert replaced_hyps == plain_hyps and any(plain_hyps)
        assert (replaced.replace_unk, plain.replace_unk, plain.unk_tokens) == (True, False, 0)
        # Every score equal; only the flag and the timings may differ.
        untimed = {"seconds": 0.0, "words_per_s": 0.0}
        assert replace(replaced, replace_unk=False, **untimed) == replace(plain, **untimed)


@pytest.mark.parametrize("beam", [1, 2])
def test_a_written_unk_becomes_the_most_attended_source_word(tiny_model, beam: int) -> None:
    model = _biased(tiny_model, UNK_ID, 100.0)  # writes <unk> at every step, up to max_len
    cfg = DecodeConfig(beam_size=beam, max_len=3)
    pairs = [Pair("the Zorg sat", "", 0), Pair("Zorg", "", 1), Pair("", "", 2)]
    assert SRC_WORDS.encode("the Zorg sat")[1] == UNK_ID  # "Zorg" is not in the source vocabulary
    scores, hyps = evaluate(model, SRC_WORDS, TGT_WORDS, pairs, cfg, replace_unk=True)
    [[best]] = decode(model, [SRC_WORDS.encode(pairs[0].src)], replace(cfg, keep_attention=True))
    assert best.tokens == [UNK_ID] * 3
    assert [int(np.argmax(row)) for row in best.attention] == [0, 1, 1]
    # The copy is the word as written, not the <unk> its id stands for.
    assert hyps[:2] == ["the Zorg Zorg", "Zorg Zorg Zorg"]
    # An empty source (decoded as a lone <unk> id) has no word to copy.
    assert hyps[2] == "<unk><unk><unk>"
    assert (scores.unk_tokens, scores.unk_replaced) == (9, 6)
    _, plain = evaluate(model, SRC_WORDS, TGT_WORDS, pairs, cfg)
    assert plain == ["<unk><unk><unk>"] * 3
