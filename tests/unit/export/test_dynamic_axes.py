"""Batch, source length, rows and k are truly dynamic in every shipped graph: the shapes the graphs
declare (as ONNX Runtime reads them) name those axes, and the shapes they really produce at sizes
far from the export example's (batch 3, length 9, k 4) equal the declared ones."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from export.spec import BATCH, ROWS, SRC_LEN, K
from s2s.bundle import load_bundle

VARIANTS = [("fp32", False), ("fp32", True), ("int8", False), ("int8", True), ("fp16", False)]
SIZES = [(1, 1, 1), (2, 30, 8), (7, 5, 3), (16, 64, 12)]  # (batch = rows, src_len, k)


def _resolve(shape, sizes):
    return tuple(sizes[d] if isinstance(d, str) else d for d in shape)


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


@pytest.mark.parametrize(
    ("precision", "optimized"), VARIANTS, ids=[f"{p}{'-opt' if o else ''}" for p, o in VARIANTS]
)
def test_declared_shapes_are_dynamic_and_real_shapes_match(bundle, precision, optimized):
    path = {g: bundle.graph_path(g, precision, optimized) for g in ("encoder", "decoder_step")}
    assert optimized == path["encoder"].name.endswith(".opt.onnx"), "the saved optimised graph must be used"
    enc = ort.InferenceSession(str(path["encoder"]), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(path["decoder_step"]), providers=["CPUExecutionProvider"])
    m = bundle.model
    for session, graph in ((enc, "encoder"), (dec, "decoder_step")):
        spec = {t["name"]: t["shape"] for t in bundle.graph(graph)["outputs"]}
        declared = {o.name: o.shape for o in session.get_outputs()}
        assert declared == spec, f"{graph} declares {declared}, the manifest says {spec}"

    rng = np.random.default_rng(0)
    for batch, src_len, k in SIZES:
        sizes = {BATCH: batch, ROWS: batch, SRC_LEN: src_len, K: k}
        lengths = rng.integers(1, src_len + 1, size=batch)
        lengths[0] = src_len
        src = rng.integers(4, m.src_vocab_size, size=(batch, src_len))
        enc_out = dict(
            zip(
                [o.name for o in enc.get_outputs()],
                enc.run(None, {"src_ids": src, "src_lengths": lengths}),
                strict=True,
            )
        )
        for output in enc.get_outputs():
            assert enc_out[output.name].shape == _resolve(output.shape, sizes), (output.name, batch, src_len)
        feeds = {
            "prev_tokens": rng.integers(4, m.tgt_vocab_size, size=batch),
            "feed": np.zeros((batch, m.hidden), np.float32),
            "memory": enc_out["memory"],
            "keys": enc_out["keys"],
            "src_mask": np.arange(src_len)[None, :] < lengths[:, None],
            "k": np.array([k], dtype=np.int64),
        }
        feeds.update({name: enc_out[f"init_{name}"] for name in bundle.state})
        step = dict(zip([o.name for o in dec.get_outputs()], dec.run(None, feeds), strict=True))
        for output in dec.get_outputs():
            assert step[output.name].shape == _resolve(output.shape, sizes), (output.name, batch, src_len, k)
        # Padding is masked: no attention beyond a row's length, and each row sums to 1.
        assert np.allclose(step["attn"].sum(-1), 1.0, atol=1e-3)
        assert np.all(step["attn"][~feeds["src_mask"]] == 0)
        assert np.all(np.diff(step["topk_log_probs"], axis=-1) <= 0), "top-k comes sorted, best first"
