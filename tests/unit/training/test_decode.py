"""The PyTorch reference decoder: what the ONNX path must equal token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2s.tokenizer import BOS_ID, EOS_ID
from training.decode import DecodeConfig, decode, top_k
from training.model import Seq2Seq

SOURCES = [[4, 5, 6, 7, 8], [9, 4], [5, 6, 7], [12, 11, 10, 9, 8, 7, 6]]


def _manual_greedy(model: Seq2Seq, src: list[int], max_len: int) -> list[int]:
    """Greedy decoding written out step by step, one sentence, without BeamSearch."""
    with torch.no_grad():
        enc = model.encode(torch.tensor([src]), torch.tensor([len(src)]))
        mask = torch.ones(1, len(src), dtype=torch.bool)
        state, feed, prev, out = enc.state, torch.zeros(1, model.cfg.hidden), torch.tensor([BOS_ID]), []
        for _ in range(max_len):
            step = model.decode_step(prev, state, feed, enc.memory, enc.keys, mask)
            state, feed = step.state, step.feed
            token = int(step.log_probs[0].argmax())
            if token == EOS_ID:
                break
            out.append(token)
            prev = torch.tensor([token])
        return out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_greedy_equals_a_hand_written_greedy_loop(cell: str, tiny_model) -> None:
    model = tiny_model(cell, "general")
    results = decode(model, SOURCES, DecodeConfig(beam_size=1, max_len=9))
    for src, hyps in zip(SOURCES, results, strict=True):
        assert hyps[0].tokens == _manual_greedy(model, src, 9)


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_decoding_equals_one_sentence_at_a_time(beam: int, tiny_model) -> None:
    model = tiny_model("lstm", "additive")
    cfg = DecodeConfig(beam_size=beam, n_best=beam, max_len=8, length_penalty=0.6, keep_attention=True)
    together = decode(model, SOURCES, cfg)
    for src, hyps in zip(SOURCES, together, strict=True):
        alone = decode(model, [src], cfg)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)
        for h in hyps:
            assert h.attention.shape == (len(h.tokens), len(src))  # no padding columns
            np.testing.assert_allclose(h.attention.sum(axis=1), 1.0, rtol=1e-5)


def test_beam_hypotheses_are_ranked_and_scores_match_their_log_probs(tiny_model) -> None:
    model = tiny_model("gru", "dot")
    hyps = decode(model, [SOURCES[0]], DecodeConfig(beam_size=4, n_best=4, max_len=6))[0]
    assert len(hyps) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:  # length penalty 0: score is the sum of the token log-probs (+ eos)
        assert h.raw_score <= sum(h.token_log_probs) + 1e-5


def test_beam_search_finds_at_least_the_greedy_score(tiny_model) -> None:
    model = tiny_model("lstm", "concat", seed=3)
    greedy = decode(model, SOURCES, DecodeConfig(beam_size=1, max_len=10))
    beam = decode(model, SOURCES, DecodeConfig(beam_size=5, max_len=10))
    for g, b in zip(greedy, beam, strict=True):
        if g[0].finish_reason == "eos" and b[0].finish_reason == "eos":
            assert b[0].raw_score >= g[0].raw_score - 1e-5


def test_top_k_breaks_ties_by_lower_id_like_onnx_topk() -> None:
    log_probs = torch.tensor([[-1.0, -0.5, -0.5, -2.0, -0.5]])
    values, ids = top_k(log_probs, 4)
    assert ids.tolist() == [[1, 2, 4, 0]]
    assert values.tolist() == [[-0.5, -0.5, -0.5, -1.0]]
    assert top_k(log_probs, 10)[1].shape == (1, 5)  # k clamped to the vocabulary
