"""Reduced-precision variants of the fp32 graphs: int8 (CPU) and fp16 (GPU providers).

int8 is ONNX Runtime's dynamic quantisation: weights stored as int8, activations quantised on the
fly per call. Its quantiser handles MatMul, not Gemm, and the TorchScript exporter writes every
nn.Linear with a bias (the output projection, the LSTM/GRU cells' input and recurrent products)
as Gemm; so Gemm nodes with constant weights are first rewritten as MatMul + Add, which computes
the same thing and lets the quantiser reach the weights that dominate the step's cost.

fp16 keeps fp32 inputs and outputs (keep_io_types), so the runner feeds both variants alike.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT8_OP_TYPES = ["MatMul"]  # the weight products; LSTM/GRU nodes (encoder) stay fp32
INT8_PER_CHANNEL = False  # per-tensor scales already keep dates at fp32's exact match (docs/export.md)
# 7-bit weights avoid the u8s8 overflow of CPUs without VNNI (AVX2-only machines) at a tiny cost.
INT8_REDUCE_RANGE = True


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm(A, B, C) with constant B (and C) as MatMul(A, B') + C, in place.

    Only the exporter's form is rewritten: alpha = beta = 1, transA = 0. Returns the count."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    new_nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.input[1] not in inits
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            new_nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        weight_name = f"{node.input[1]}_kn_{rewritten}"  # (K, N) for MatMul
        graph.initializer.append(numpy_helper.from_array(weight, weight_name))
        if len(node.input) > 2 and node.input[2]:
            product = f"{node.output[0]}_matmul"
            new_nodes.append(
                helper.make_node(
                    "MatMul", [node.input[0], weight_name], [product], name=f"{node.name}_MatMul"
                )
            )
            new_nodes.append(
                helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_Add")
            )
        else:
            new_nodes.append(
                helper.make_node(
                    "MatMul", [node.input[0], weight_name], list(node.output), name=f"{node.name}_MatMul"
                )
            )
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    _drop_unused_initializers(model)
    return rewritten


def topological_sort(graph: onnx.GraphProto) -> None:
    """Order nodes so each comes after the producers of its inputs (stable otherwise), in place."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or undefined inputs at {[n.name for n in pending[:3]]}")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


class _QuietQuantizer(logging.Filter):
    """The quantiser logs per-tensor INFO lines and a pre-processing hint on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_quantizer = "quantization" in record.pathname and "onnxruntime" in record.pathname
        hint = "consider to run pre-processing" in record.getMessage()  # we did ours: Gemm -> MatMul
        return not (hint or (from_quantizer and record.levelno < logging.WARNING))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the graph at `src`, written to `dst`."""
    model = onnx.load(str(src))
    gemm_to_matmul(model)
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)
    try:
        _quantize_dynamic(model, src.name, dst)
    finally:
        logging.getLogger().removeFilter(quiet)
    onnx.checker.check_model(str(dst))


def _quantize_dynamic(model: onnx.ModelProto, name: str, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        onnx.save(model, str(staged))
        quantize_dynamic(
            staged,
            dst,
            op_types_to_quantize=INT8_OP_TYPES,
            per_channel=INT8_PER_CHANNEL,
            reduce_range=INT8_REDUCE_RANGE,
            weight_type=QuantType.QInt8,
        )


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and arithmetic, fp32 inputs and outputs (Cast nodes at the edges)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    # TopK's K input and the int64 paths are untouched; keep_io_types keeps the runner's dtypes.
    converted = convert_float_to_float16(model, keep_io_types=True)
    topological_sort(converted.graph)  # the converter appends its input Casts at the end
    onnx.save(converted, str(dst))
    onnx.checker.check_model(str(dst))
