"""Unary Translate and GetModelInfo against a real server."""

from __future__ import annotations

import numpy as np
import pytest
from e2e_support import DEFAULT_MODEL, ENDLESS_MODEL, date_texts

from service.client import AsyncTranslatorClient
from service.server import RunningServer


async def test_translate_one_text(client: AsyncTranslatorClient) -> None:
    translation = await client.translate_one("24 November 2026")
    [hyp] = translation.hypotheses
    assert hyp.text, "empty translation"
    assert len(hyp.tokens) == len(hyp.token_ids) == len(hyp.token_log_probs) > 0
    assert hyp.finish_reason == "eos"
    assert hyp.raw_score <= 0 and np.isclose(hyp.score, hyp.raw_score)  # length penalty 0
    assert translation.source_tokens[:2] == ["2", "4"]
    assert translation.source_unknown_tokens == 0


async def test_a_batch_of_texts_answers_in_order_like_single_calls(client: AsyncTranslatorClient) -> None:
    texts = date_texts(6)
    batch = await client.translate(texts)
    singles = [await client.translate_one(text) for text in texts]
    assert [t.hypotheses[0].token_ids for t in batch] == [t.hypotheses[0].token_ids for t in singles]
    assert [t.source_tokens for t in batch] == [list(text) for text in texts]


async def test_n_best_returns_distinct_hypotheses_best_first(client: AsyncTranslatorClient) -> None:
    translation = await client.translate_one("3 mars 1999", beam_size=5, n_best=4)
    hyps = translation.hypotheses
    assert len(hyps) == 4
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(h.token_ids) for h in hyps}) == 4


async def test_attention_is_output_by_source_and_rows_sum_to_one(client: AsyncTranslatorClient) -> None:
    for beam in (1, 3):
        translation = await client.translate_one("Friday, 7 July 2000", beam_size=beam, attention=True)
        hyp = translation.hypotheses[0]
        assert hyp.attention is not None
        assert hyp.attention.shape == (len(hyp.token_ids), len(translation.source_tokens))
        np.testing.assert_allclose(hyp.attention.sum(axis=1), 1.0, atol=1e-4)
        assert hyp.source_tokens == translation.source_tokens
        assert hyp.target_tokens == hyp.tokens


async def test_attention_is_absent_unless_asked(client: AsyncTranslatorClient) -> None:
    assert (await client.translate_one("1 May 2001")).hypotheses[0].attention is None


async def test_max_length_caps_the_output(client: AsyncTranslatorClient) -> None:
    hyp = (await client.translate_one("1 May 2001", max_length=3)).hypotheses[0]
    assert len(hyp.token_ids) == 3
    assert hyp.finish_reason == "max_length"


async def test_unseen_characters_become_unk_and_replace_unk_is_flagged(client: AsyncTranslatorClient) -> None:
    translation = await client.translate_one("🙂 1 May 2001 жжж", attention=True, replace_unk=True)
    assert translation.source_unknown_tokens == 4  # the emoji and three Cyrillic letters
    hyp = translation.hypotheses[0]
    # Whatever the model made of it, no output <unk> survives replace_unk.
    assert "<unk>" not in hyp.tokens
    assert hyp.unk_replaced == (3 in hyp.token_ids)


async def test_a_second_model_is_served_by_name(client: AsyncTranslatorClient) -> None:
    hyp = (await client.translate_one("1 May 2001", model=ENDLESS_MODEL, max_length=20)).hypotheses[0]
    assert len(hyp.token_ids) == 20 and hyp.finish_reason == "max_length"
    named = await client.translate_one("1 May 2001", model=f"{DEFAULT_MODEL}/1")
    default = await client.translate_one("1 May 2001")
    assert named.hypotheses[0].token_ids == default.hypotheses[0].token_ids


async def test_model_info(client: AsyncTranslatorClient, server: RunningServer) -> None:
    info = await client.model_info()
    assert (info.name, info.version) == (DEFAULT_MODEL, "1")
    assert (info.cell, info.score, info.layers, info.hidden) == ("lstm", "general", 2, 32)
    assert info.src_vocab_size > 10 and info.tgt_vocab_size > 10
    assert (info.src_tokenizer, info.tgt_tokenizer) == ("char", "char")
    assert info.execution_provider == "cpu"
    assert info.default_max_length == 32
    limits = server.config.limits
    assert (info.limits.max_beam, info.limits.max_output_len, info.limits.max_texts) == (
        limits.max_beam,
        limits.max_output_len,
        limits.max_texts,
    )
    assert [(m.name, m.version) for m in info.loaded_models] == [(DEFAULT_MODEL, "1"), (ENDLESS_MODEL, "1")]
    assert (await client.model_info(ENDLESS_MODEL)).default_max_length == 512


@pytest.mark.parametrize("beam", [1, 4])
async def test_length_penalty_changes_scores_not_raw_scores(client: AsyncTranslatorClient, beam: int) -> None:
    plain = (await client.translate_one("2 June 2010", beam_size=beam)).hypotheses[0]
    penalised = (await client.translate_one("2 June 2010", beam_size=beam, length_penalty=1.0)).hypotheses[0]
    length = len(penalised.token_ids) + 1  # the eos counts
    np.testing.assert_allclose(penalised.score, penalised.raw_score / ((5 + length) / 6), rtol=1e-5)
    assert plain.token_ids and penalised.token_ids
