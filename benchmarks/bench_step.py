"""Decoder-step latency and throughput: ONNX Runtime vs PyTorch eager, same weights, side by side.

    .venv/bin/python benchmarks/bench_step.py [--checkpoint artifacts/dates/checkpoint.pt]
        [--rows 1,8,64] [--threads 2] [--rounds 7] [--calls 40] [--out benchmarks/results/bench_step.json]

For each model (the default dates checkpoint, and a larger random one: H=512, E=256, V=8000), each
precision of the ONNX graphs (fp32, int8) and each row count, one decoder step is timed call by
call, interleaved (an ORT call, an eager call, a one-node MatMul graph of the large model's output
projection shape, rows x 512 x 8000, and again), so machine noise hits all alike. Reported: medians
and p95/p99 per call, the ratio eager/ORT, rows per second, and the step's achieved FLOP/s as a
fraction of the MatMul graph's FLOP/s in the same run (../shared/guides/PERFORMANCE.md). The ORT
step is called the way the server calls it: top-k (k = 10, beam 5) and state out, the (rows, V)
log-probs left inside.
Eager runs `decode_step` then `torch.topk` under inference_mode. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

# Both runtimes share this process and its cores: threads that spin after their work would steal
# the cores from the other runtime's next call. Passive waiting for torch's OpenMP pool (read when
# torch loads, so set before the import) and no spinning for ONNX Runtime (as the server runs it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.exporter import ExportConfig, export_model  # noqa: E402
from s2s.bundle import load_bundle  # noqa: E402

SRC_LEN = 10  # source tokens per row (PERFORMANCE.md's T)
TOP_K = 10  # beam 5 asks for 2 * beam candidates per row
PEAK_K, PEAK_N = 512, 8000  # MatMul ceiling shape: (rows x 512) @ (512 x 8000), as in PERFORMANCE.md
LARGE = dict(src_vocab_size=8000, tgt_vocab_size=8000, cell="lstm", score="general", emb_dim=256, hidden=512,
             layers=1, bidirectional=True, dropout=0.0)  # fmt: skip


def step_flops(cfg, src_len: int = SRC_LEN) -> float:
    """FLOPs of one decoder step per row (multiply-adds x 2), PERFORMANCE.md's formula, all layers."""
    H, E, V, L = cfg.hidden, cfg.emb_dim, cfg.tgt_vocab_size, cfg.layers
    gates = 4 if cfg.cell == "lstm" else 3
    cell = gates * H * (E + H + H) + (L - 1) * gates * H * (H + H)
    attention = (H * H if cfg.score == "general" else 0) + 2 * src_len * H
    if cfg.score in ("concat", "additive"):
        attention += H * cfg.key_dim + src_len * cfg.key_dim
    return 2.0 * (cell + attention + 2 * H * H + H * V)


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def matmul_session(rows: int, k: int, n: int, threads: int, tmp: Path) -> tuple[ort.InferenceSession, dict]:
    """A one-node MatMul graph (rows x k) @ (k x n) with a constant weight: this machine's ceiling."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])],
        [weight],
    )
    path = tmp / f"matmul_{rows}_{k}_{n}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return session(path, threads), {"x": np.ones((rows, k), np.float32)}


def step_inputs(model, rows: int, seed: int = 0):
    """Torch tensors for one step of `rows` rows over a SRC_LEN source, from a real encoder run."""
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    src = torch.randint(4, cfg.src_vocab_size, (1, SRC_LEN), generator=gen)
    with torch.inference_mode():
        enc = model.encode(src, torch.tensor([SRC_LEN]))
    return {
        "prev_tokens": torch.randint(4, cfg.tgt_vocab_size, (rows,), generator=gen),
        "state": tuple(s.repeat(1, rows, 1).contiguous() for s in enc.state),
        "feed": torch.randn(rows, cfg.hidden, generator=gen) * 0.1,
        "memory": enc.memory.repeat(rows, 1, 1).contiguous(),
        "keys": enc.keys.repeat(rows, 1, 1).contiguous(),
        "src_mask": torch.ones(rows, SRC_LEN, dtype=torch.bool),
    }


def time_calls(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {
        "p50_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def bench_one(model, bundle, precision: str, rows: int, args, tmp: Path) -> dict:
    cfg = model.cfg
    dec = session(bundle.graph_path("decoder_step", precision), args.threads)
    x = step_inputs(model, rows)
    feeds = {k: v.numpy() for k, v in x.items() if k != "state"}
    feeds.update({name: s.numpy() for name, s in zip(bundle.state, x["state"], strict=True)})
    feeds["k"] = np.array([min(TOP_K, cfg.tgt_vocab_size)], np.int64)
    wanted = [o.name for o in dec.get_outputs() if o.name != "log_probs"]
    k = int(feeds["k"][0])

    def run_ort():
        dec.run(wanted, feeds)

    def run_eager():
        with torch.inference_mode():
            out = model.decode_step(
                x["prev_tokens"], x["state"], x["feed"], x["memory"], x["keys"], x["src_mask"]
            )
            torch.topk(out.log_probs, k, dim=-1)

    # The ceiling: the large model's output projection (rows x 512 x 8000), the same for every model
    # so fractions compare across models; for the large model it is exactly the step's own shape.
    mm, mm_feeds = matmul_session(rows, PEAK_K, PEAK_N, args.threads, tmp)

    def run_matmul():
        mm.run(["y"], mm_feeds)

    fns = {"ort": run_ort, "eager": run_eager, "matmul": run_matmul}
    runs = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        time_calls(fn, 5)
    # Interleaved call by call, so a burst of load from other processes hits all three alike; the
    # speed-up is also taken per interleaved pair (median of eager_i / ort_i), which is robust to it.
    # --block N > 1: N consecutive calls per runtime per turn, so each runtime's weights are warm
    # in the caches as they are in a server stepping one batch after another.
    block = max(1, args.block)
    for _ in range(max(1, args.rounds * args.calls // block)):
        for name, fn in fns.items():
            runs[name] += time_calls(fn, block)
    stats = {name: summary(t) for name, t in runs.items()}
    ort_s, eager_s, mm_s = (stats[n]["p50_ms"] / 1e3 for n in ("ort", "eager", "matmul"))
    step_rate = step_flops(cfg) * rows / ort_s
    matmul_rate = 2.0 * rows * PEAK_K * PEAK_N / mm_s
    return {
        "rows": rows,
        "precision": precision,
        "ort": stats["ort"],
        "eager_fp32": stats["eager"],
        "matmul_fp32": stats["matmul"],
        "speedup_vs_eager": eager_s / ort_s,  # ratio of medians
        "speedup_vs_eager_paired": float(np.median(np.asarray(runs["eager"]) / np.asarray(runs["ort"]))),
        "ort_rows_per_s": rows / ort_s,
        "eager_rows_per_s": rows / eager_s,
        "step_mflop_per_row": step_flops(cfg) / 1e6,
        "ort_gflop_per_s": step_rate / 1e9,
        "matmul_gflop_per_s": matmul_rate / 1e9,
        # Paired like the speed-up: (step FLOPs / t_ort_i) / (MatMul FLOPs / t_matmul_i), median.
        "fraction_of_matmul": float(np.median(np.asarray(runs["matmul"]) / np.asarray(runs["ort"])))
        * step_flops(cfg)
        * rows
        / (2.0 * rows * PEAK_K * PEAK_N),
    }


def prepare_models(args, tmp: Path):
    from training.model import ModelConfig, Seq2Seq, load_checkpoint

    models = []
    if Path(args.checkpoint).is_file():
        model, ckpt = load_checkpoint(args.checkpoint)
        models.append(("default (dates)", model, ckpt))
    else:
        print(f"note: {args.checkpoint} not found; benchmarking the large model only")
    if not args.skip_large:
        torch.manual_seed(0)
        model = Seq2Seq(ModelConfig(**LARGE)).eval()
        vocab = {
            "kind": "word",
            "tokens": ["<pad>", "<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(7996)],
        }
        models.append(
            ("large H=512 V=8000", model, {"name": "large", "src_tokenizer": vocab, "tgt_tokenizer": vocab})
        )
    out = []
    for label, model, ckpt in models:
        bundle_dir = export_model(
            model,
            ckpt,
            ExportConfig(
                out_dir=tmp, name=ckpt.get("name") or "m", quantize="int8", optimization_level="disable"
            ),
        )
        out.append((label, model, load_bundle(bundle_dir)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="artifacts/dates/checkpoint.pt")
    parser.add_argument("--rows", default="1,8,64")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads and torch threads")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40, help="rounds x calls interleaved calls per runtime")
    parser.add_argument(
        "--block",
        type=int,
        default=1,
        help="consecutive calls per runtime per turn: 1 = call by call (each call finds the other "
        "runtimes' weights in the caches), N = warm caches, as in a server's decode loop",
    )
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/bench_step.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows_list = [int(r) for r in args.rows.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for label, model, bundle in prepare_models(args, tmp):
            for precision in ("fp32", "int8"):
                for rows in rows_list:
                    r = bench_one(model, bundle, precision, rows, args, tmp)
                    r["model"] = label
                    r["hidden"], r["vocab"] = model.cfg.hidden, model.cfg.tgt_vocab_size
                    results.append(r)
                    print_row(r, header=len(results) == 1)
    meta = {
        "command": "benchmarks/bench_step.py "
        + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()),
        "threads": args.threads,
        "thread_waiting": f"torch OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, ORT allow_spinning=0",
        "provider": "CPUExecutionProvider",
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "src_len": SRC_LEN,
        "top_k": TOP_K,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nthreads={args.threads}, CPU EP, source length {SRC_LEN}, k={TOP_K}; "
          f"load average {meta['load_average'][0]:.1f}; JSON: {args.out}")  # fmt: skip


def print_row(r: dict, header: bool) -> None:
    if header:
        print(
            f"{'model':<20} {'prec':<5} {'rows':>4} {'ORT p50':>9} {'eager p50':>10} {'eager/ORT':>9} "
            f"{'ORT rows/s':>11} {'MatMul p50':>10} {'ORT/MatMul':>10}"
        )
    print(
        f"{r['model']:<20} {r['precision']:<5} {r['rows']:>4} {r['ort']['p50_ms']:>7.3f}ms "
        f"{r['eager_fp32']['p50_ms']:>8.3f}ms {r['speedup_vs_eager_paired']:>8.2f}x "
        f"{r['ort_rows_per_s']:>11,.0f} {r['matmul_fp32']['p50_ms']:>8.3f}ms {r['fraction_of_matmul']:>9.0%}"
    )


if __name__ == "__main__":
    main()
