"""The Gemm -> MatMul + Add rewrite that lets the int8 quantiser reach the Linear weights computes
what the original graph computes, and the int8 graph really holds int8 weights."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from export.quantize import gemm_to_matmul
from s2s.bundle import load_bundle


def _step_feeds(bundle, rows=3, src_len=6, seed=0):
    rng = np.random.default_rng(seed)
    m = bundle.model
    feeds = {
        "prev_tokens": rng.integers(4, m.tgt_vocab_size, size=rows),
        "feed": rng.standard_normal((rows, m.hidden)).astype(np.float32),
        "memory": rng.standard_normal((rows, src_len, m.hidden)).astype(np.float32),
        "keys": rng.standard_normal((rows, src_len, m.attn_dim)).astype(np.float32),
        "src_mask": np.ones((rows, src_len), dtype=bool),
        "k": np.array([3], dtype=np.int64),
    }
    for name in bundle.state:
        feeds[name] = rng.standard_normal((m.layers, rows, m.hidden)).astype(np.float32)
    return feeds


def test_gemm_rewrite_is_exact(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle)
    original = onnx.load(str(bundle.graph_path("decoder_step")))
    rewritten = onnx.load(str(bundle.graph_path("decoder_step")))
    assert gemm_to_matmul(rewritten) >= 3, "the cell's two products and the output projection"
    assert not [n for n in rewritten.graph.node if n.op_type == "Gemm"]
    onnx.checker.check_model(rewritten, full_check=True)
    feeds = _step_feeds(bundle)
    outputs = []
    for model in (original, rewritten):
        path = tmp_path / f"{len(outputs)}.onnx"
        onnx.save(model, str(path))
        outputs.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds))
    for before, after in zip(*outputs, strict=True):
        np.testing.assert_allclose(after, before, atol=1e-5)


def test_int8_graph_holds_int8_weights(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    graph = onnx.load(str(bundle.graph_path("decoder_step", "int8"))).graph
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 3
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)
