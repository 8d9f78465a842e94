"""The lecture's worked example, computed by the model's own attention module."""

from __future__ import annotations

import pytest
import torch

from training.model import Attention


def test_lecture_dot_score_weighting_and_context() -> None:
    attention = Attention("dot", hidden=2, attn_dim=2)
    encoder_states = torch.tensor([[[0.8, 0.2], [0.1, 0.9]]])  # (B=1, T=2, H=2)
    decoder_state = torch.tensor([[0.7, 0.3]])  # (R=1, H=2)
    keys = attention.keys(encoder_states)

    scores = attention.scores(decoder_state, keys)  # (1, 2)
    assert scores[0, 0].item() == pytest.approx(0.62)  # 0.7*0.8 + 0.3*0.2
    assert scores[0, 1].item() == pytest.approx(0.34)  # 0.7*0.1 + 0.3*0.9

    # A weight of 0.7 turns (0.8, 0.2) into (0.56, 0.14).
    assert (0.7 * encoder_states[0, 0]).tolist() == pytest.approx([0.56, 0.14])

    mask = torch.ones(1, 2, dtype=torch.bool)
    context, weights = attention(decoder_state, keys, encoder_states, mask)
    expected_weights = torch.softmax(torch.tensor([0.62, 0.34]), dim=0)
    assert weights[0].tolist() == pytest.approx(expected_weights.tolist())
    assert weights.sum().item() == pytest.approx(1.0)
    expected_context = expected_weights[0] * encoder_states[0, 0] + expected_weights[1] * encoder_states[0, 1]
    assert context[0].tolist() == pytest.approx(expected_context.tolist())


@pytest.mark.parametrize("score", ["dot", "general", "concat", "additive"])
def test_padding_gets_no_attention(score: str) -> None:
    torch.manual_seed(0)
    attention = Attention(score, hidden=4, attn_dim=3)
    memory = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    _, weights = attention(torch.randn(1, 4), attention.keys(memory), memory, mask)
    assert weights[0, 2].item() == 0.0
    assert weights.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("score", ["dot", "general"])
def test_score_scale_multiplies_the_scores_through_the_keys(score: str) -> None:
    # Scaling lives in the keys, so exported encoders carry it and the decoder step is unchanged.
    torch.manual_seed(0)
    plain = Attention(score, hidden=4, attn_dim=4)
    scaled = Attention(score, hidden=4, attn_dim=4, scale=0.25)
    scaled.load_state_dict(plain.state_dict())
    memory, query = torch.randn(2, 3, 4), torch.randn(2, 4)
    expected = 0.25 * plain.scores(query, plain.keys(memory))
    assert torch.allclose(scaled.scores(query, scaled.keys(memory)), expected, atol=1e-6)
