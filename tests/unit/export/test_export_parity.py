"""The numpy + ONNX Runtime decoder (engine/decode.py) equals the PyTorch reference decoder token for token.

For every score type with LSTM and GRU cells, bidirectional encoder, two layers: a small model is
trained for a few seconds on dates (so its outputs are not near-ties), exported by the real
exporter, and 200 held-out inputs are decoded greedily and with beam search by both decoders. Both
feed the same s2s.search.BeamSearch, so any difference comes from the numbers the graphs compute.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.config import DecodeConfig
from engine.decode import Decoder
from engine.sessions import RunnerConfig
from export.exporter import ExportConfig, export_model
from export.testing import tiny_model

pytestmark = pytest.mark.slow

CELLS = ("lstm", "gru")
SCORES = ("dot", "general", "concat", "additive")
HELD_OUT = 200
MAX_LEN = 16  # dates are 10 characters; room for a model that rambles
SCORE_TOLERANCE = 1e-4  # hypothesis scores: sums of float32 log-probs from two runtimes
ATTENTION_TOLERANCE = 1e-4  # attention weights, returned to clients with return_attention


@pytest.fixture(scope="module")
def held_out_texts():
    from training.dates import held_out_pairs

    return [src for src, _ in held_out_pairs()[:HELD_OUT]]


@pytest.fixture(scope="module", params=list(itertools.product(CELLS, SCORES)), ids=lambda p: f"{p[0]}-{p[1]}")
def exported(request, tmp_path_factory, held_out_texts):
    cell, score = request.param
    model, checkpoint = tiny_model(
        cell=cell,
        score=score,
        bidirectional=True,
        layers=2,
        attn_dim=24,
        train_steps=150,
        name=f"{cell}-{score}",
    )
    bundle_dir = export_model(model, checkpoint, ExportConfig(out_dir=tmp_path_factory.mktemp("parity")))
    decoder = Decoder.open(bundle_dir, RunnerConfig(intra_op_threads=1))  # saved optimised graphs, as served
    sources = [decoder.bundle.src_tokenizer.encode(t) for t in held_out_texts]
    assert all(sources), "every held-out input must have tokens"
    return model, decoder, sources


def _assert_same(reference, ours, label):
    assert len(reference) == len(ours), label
    for i, (ref_hyps, ort_hyps) in enumerate(zip(reference, ours, strict=True)):
        assert [h.tokens for h in ort_hyps] == [h.tokens for h in ref_hyps], f"{label}: input {i}"
        assert [h.finish_reason for h in ort_hyps] == [h.finish_reason for h in ref_hyps], (
            f"{label}: input {i}"
        )
        for ref, got in zip(ref_hyps, ort_hyps, strict=True):
            assert got.score == pytest.approx(ref.score, abs=SCORE_TOLERANCE), f"{label}: input {i}"
            if ref.attention is not None:
                assert got.attention.shape == ref.attention.shape, f"{label}: input {i}"
                assert np.abs(got.attention - ref.attention).max() <= ATTENTION_TOLERANCE, (
                    f"{label}: input {i}"
                )


@pytest.mark.parametrize(
    ("beam_size", "n_best", "length_penalty"),
    [(1, 1, 0.0), (4, 2, 0.6)],
    ids=["greedy", "beam4"],
)
def test_ort_decoder_equals_pytorch_reference(exported, beam_size, n_best, length_penalty):
    from training.decode import DecodeConfig as ReferenceConfig
    from training.decode import decode

    keep_attention = beam_size > 1  # attention rows are compared too, on the beam runs
    model, decoder, sources = exported
    reference = decode(
        model,
        sources,
        ReferenceConfig(
            beam_size=beam_size,
            n_best=n_best,
            max_len=MAX_LEN,
            length_penalty=length_penalty,
            keep_attention=keep_attention,
        ),
    )
    config = DecodeConfig(
        beam_size=beam_size,
        n_best=n_best,
        max_length=MAX_LEN,
        max_length_ratio=0.0,
        length_penalty=length_penalty,
        keep_attention=keep_attention,
    )
    ours = [decoder.decode_ids(src, config) for src in sources]
    assert (reference[0][0].attention is not None) == keep_attention
    _assert_same(reference, ours, f"{model.cfg.cell}/{model.cfg.score} beam={beam_size}")
    # Not a vacuous pass: the models must mostly stop on <eos>, with real outputs.
    assert sum(h[0].finish_reason == "eos" for h in ours) > HELD_OUT // 2
    assert len({tuple(h[0].tokens) for h in ours}) > HELD_OUT // 4
