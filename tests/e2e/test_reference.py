"""The server's outputs equal the PyTorch reference decoder's, token for token, on 100 inputs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from e2e_support import E2EModels, date_texts

from service.client import AsyncTranslatorClient, Translation

MAX_LENGTH = 32
SCORE_TOLERANCE = 1e-4  # float32 sums over ~11 steps, ONNX Runtime vs PyTorch kernels


@pytest.mark.parametrize(
    ("beam", "n_best", "length_penalty"),
    [(1, 1, 0.0), (4, 2, 0.6)],
    ids=["greedy", "beam4-nbest2-lp0.6"],
)
async def test_outputs_equal_the_pytorch_reference_decoder_on_100_inputs(
    models: E2EModels, client: AsyncTranslatorClient, beam: int, n_best: int, length_penalty: float
) -> None:
    from training.decode import DecodeConfig, decode

    texts = date_texts(100)
    assert len(set(texts)) == 100
    sources = [models.src_tokenizer.encode(text) for text in texts]
    config = DecodeConfig(beam_size=beam, n_best=n_best, max_len=MAX_LENGTH, length_penalty=length_penalty)
    reference = decode(models.model, sources, config)

    options = dict(beam_size=beam, n_best=n_best, max_length=MAX_LENGTH, length_penalty=length_penalty)
    chunks = [texts[i : i + 16] for i in range(0, len(texts), 16)]  # max_texts per call is 16
    served: list[Translation] = []
    for pair in range(0, len(chunks), 2):
        # Two calls at a time (2 x 16 texts x beam 4 = 128 rows: within max_queue 256), so the
        # server batches requests of different lengths that join at different steps.
        answers = await asyncio.gather(
            *(client.translate(chunk, **options) for chunk in chunks[pair : pair + 2])
        )
        served.extend(t for answer in answers for t in answer)

    mismatches = []
    for text, ref_hyps, got in zip(texts, reference, served, strict=True):
        ref_tokens = [h.tokens for h in ref_hyps]
        got_tokens = [h.token_ids for h in got.hypotheses]
        if ref_tokens != got_tokens:
            mismatches.append((text, ref_tokens, got_tokens))
            continue
        np.testing.assert_allclose(
            [h.score for h in got.hypotheses], [h.score for h in ref_hyps], atol=SCORE_TOLERANCE, err_msg=text
        )
        assert [h.finish_reason for h in got.hypotheses] == [h.finish_reason for h in ref_hyps], text
    assert not mismatches, f"{len(mismatches)}/100 differ from the reference, e.g. {mismatches[:3]}"
