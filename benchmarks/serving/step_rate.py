"""How close one decoder step comes to this machine's ONNX Runtime MatMul rate.

FLOPs per decoded row follow ../shared/guides/PERFORMANCE.md (multiply-adds × 2): LSTM layers
4H·(in + H) with in = E + H (input feeding) for the first layer and H above it (GRU: 3H·(in + H)),
general attention H·H plus 2·T·H, the attentional combine 2H·H, the output projection H·V. The
ceiling is a one-node MatMul graph of the output projection's shape (rows × H × V), timed in the
same run, alternating with the step.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.batch import DecodeBatch
from engine.sessions import Runner, RunnerConfig
from s2s.bundle import Bundle


def step_flops_per_row(bundle: Bundle, src_len: int) -> float:
    m = bundle.model
    h, e, v = m.hidden, m.emb_dim, m.tgt_vocab_size
    gates = 4 if m.cell == "lstm" else 3
    cell = gates * h * (e + h + h) + (m.layers - 1) * gates * h * (h + h)
    attention = (h * h if m.score == "general" else 0) + 2 * src_len * h
    if m.score in ("concat", "additive"):
        attention += h * m.attn_dim + src_len * m.attn_dim
    return 2.0 * (cell + attention + 2 * h * h + h * v)


def _matmul_session(k: int, n: int, threads: int) -> ort.InferenceSession:
    import onnx  # build-time only: the graph is made here, not shipped
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = Path(tempfile.mkdtemp(prefix="s2s-matmul-")) / "matmul.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(
    bundle: Bundle,
    rows_list=(1, 8, 64),
    src_len: int = 10,
    threads: int = 0,
    repeats: int = 50,
    precision="fp32",
) -> list[dict]:
    runner = Runner.from_bundle(bundle, RunnerConfig(intra_op_threads=threads, precision=precision))
    runner.warm_up()
    h, v = bundle.model.hidden, bundle.model.tgt_vocab_size
    matmul = _matmul_session(h, v, threads)
    per_row = step_flops_per_row(bundle, src_len)
    results = []
    for rows in rows_list:
        src = np.full((rows, src_len), 5, dtype=np.int64)
        lengths = np.full((rows,), src_len, dtype=np.int64)
        enc = runner.encode(src, lengths)
        batch = DecodeBatch.build(list(range(rows)), enc.memory, enc.keys, lengths, enc.init_state, 1)
        x = np.random.default_rng(1).standard_normal((rows, h)).astype(np.float32)
        step_times, matmul_times = [], []
        for _ in range(5):  # alternate the two so machine noise hits both alike
            step_times.append(_median_s(lambda b=batch: runner.step(b, 10), repeats // 5 or 1))
            matmul_times.append(_median_s(lambda x=x: matmul.run(None, {"x": x}), repeats // 5 or 1))
        step_s, matmul_s = statistics.median(step_times), statistics.median(matmul_times)
        step_rate = per_row * rows / step_s
        matmul_rate = 2.0 * rows * h * v / matmul_s
        results.append(
            {
                "rows": rows,
                "src_len": src_len,
                "step_ms": round(step_s * 1000, 3),
                "rows_per_s": round(rows / step_s),
                "step_gflops": round(step_rate / 1e9, 2),
                "matmul_shape": f"{rows}x{h}x{v}",
                "matmul_ms": round(matmul_s * 1000, 3),
                "matmul_gflops": round(matmul_rate / 1e9, 2),
                "fraction_of_matmul": round(step_rate / matmul_rate, 3),
                "mflop_per_row": round(per_row / 1e6, 3),
            }
        )
    return results


def format_step_table(results: list[dict]) -> str:
    lines = [
        "| rows | step ms | rows/s | step GFLOP/s | MatMul (rows×H×V) | MatMul GFLOP/s | step ÷ MatMul |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']} | {r['step_ms']} | {r['rows_per_s']} | {r['step_gflops']} | {r['matmul_shape']} "
            f"| {r['matmul_gflops']} | {r['fraction_of_matmul']:.0%} |"
        )
    return "\n".join(lines)
