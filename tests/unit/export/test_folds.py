"""export/wrappers.py folds: the folded step graph computes the plain one's function (in torch,
for both cells, tied and untied outputs), the rules pick only folds that pay, and an export
records what it folded and writes the plain graph when asked."""

from __future__ import annotations

import itertools

import onnx
import pytest
import torch

from export.dummy_inputs import decoder_step_example
from export.wrappers import (
    FOLD_INPUT,
    FOLD_OUTPUT,
    DecoderStepGraph,
    FoldedDecoderStepGraph,
    step_folds,
)
from training.model import ModelConfig, Seq2Seq


def _model(cell: str, tie: bool, emb: int = 24, hidden: int = 16, vocab: int = 40) -> Seq2Seq:
    torch.manual_seed(3)
    cfg = ModelConfig(src_vocab_size=30, tgt_vocab_size=vocab, cell=cell, score="additive",
                      emb_dim=emb, hidden=hidden, layers=2, tie_embeddings=tie)  # fmt: skip
    model = Seq2Seq(cfg).eval()
    with torch.no_grad():  # biases are zero at initialisation: make them count
        for name, value in model.named_parameters():
            if "bias" in name:
                value.normal_(0, 0.5)
    return model


@pytest.mark.parametrize(("cell", "tie"), list(itertools.product(["lstm", "gru"], [False, True])))
def test_the_folded_step_computes_the_plain_steps_outputs(cell, tie):
    model = _model(cell, tie)
    folds = step_folds(model)
    assert folds == ((FOLD_INPUT, FOLD_OUTPUT) if tie else (FOLD_INPUT,))
    states = len(model.cfg.state_names)
    plain, folded = DecoderStepGraph(model, states), FoldedDecoderStepGraph(model, states, folds)
    inputs = list(decoder_step_example(model))
    with torch.no_grad():
        for _ in range(3):  # several steps: each feeds the next its state, feed and token
            want, got = plain(*inputs), folded(*inputs)
            for name, a, b in zip(
                ["state"] * states + ["feed", "attn", "top", "ids", "lp"], want, got, strict=True
            ):
                if a.dtype == torch.int64:
                    assert torch.equal(a, b), name
                else:
                    assert (a - b).abs().max().item() < 1e-5, name
            assert (want[-1] - want[-1].mean()).abs().max() > 0.1, "log-probs should not be flat"
            *state, feed = want[: states + 1]
            inputs = [want[-2][:, 0], *state, feed, *inputs[states + 2 :]]


def test_only_folds_that_pay_are_taken():
    assert step_folds(_model("lstm", tie=False)) == (FOLD_INPUT,)
    # H > E: the bottleneck's two products are fewer multiply-adds than one (V, H) matrix.
    assert step_folds(_model("lstm", tie=True, emb=8, hidden=32)) == (FOLD_INPUT,)
    # A (V, 4H) table larger than the cap is not folded.
    model = _model("lstm", tie=True, vocab=64)
    assert step_folds(model, max_table_bytes=64 * 4 * 16 * 4 - 1) == (FOLD_OUTPUT,)
    assert step_folds(model, max_table_bytes=64 * 4 * 16 * 4) == (FOLD_INPUT, FOLD_OUTPUT)


def _initializers(path) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(t.dims) for t in onnx.load(str(path)).graph.initializer}


def test_an_export_records_its_folds_and_no_fold_writes_the_plain_graph(tiny, tmp_path):
    from export.exporter import ExportConfig, export_model
    from s2s.bundle import load_bundle

    model, checkpoint = tiny
    shapes = {}
    for fold in (True, False):
        config = ExportConfig(out_dir=tmp_path / str(fold), optimization_level="disable", fold=fold)
        bundle = load_bundle(export_model(model, checkpoint, config))
        assert bundle.manifest["exporter"]["folded"] == ([FOLD_INPUT] if fold else [])
        shapes[fold] = set(_initializers(bundle.path / "decoder_step.onnx").values())
    cfg = model.cfg
    table = (cfg.tgt_vocab_size, 4 * cfg.hidden)  # the (V, 4H) input table of an LSTM
    assert table in shapes[True] and table not in shapes[False]
