"""`s2s bench` (load test of decoding variants) and `s2s bench-step` (decoder step vs MatMul).

Torch-free at import; the PyTorch baseline imports torch only when it is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from s2s.bundle import DEFAULT_BUNDLE_DIR
from s2s.cli import EXIT_USAGE
from s2s.options import add_option

VARIANTS = (
    *("torch", "ort", "sched", "server", "server-stream"),
    *("server-per-request", "server-pool", "grpc-floor", "grpc-floor-layers", "server-process"),
    "server-process-stream",
)


def _levels(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="load-test decoding variants side by side (table + JSON)",
        description="Runs the chosen variants on the same bundle and inputs, alternating, at each "
        "concurrency (closed loop) or rate (open loop); prints a table and writes JSON.",
    )
    add_option(
        p, "--bundle", type=Path, default=DEFAULT_BUNDLE_DIR, env="S2S_BENCH_BUNDLE", help="bundle dir"
    )
    add_option(p, "--checkpoint", type=Path, default=None, help="checkpoint for the PyTorch variant")
    add_option(p, "--inputs", default="dates", help="'dates' or a TSV file (its test split: line i%%20==7)")
    add_option(p, "--limit", type=int, default=0, help="use only the first N inputs (0 = all)")
    add_option(p, "--variants", default="ort,server", help=f"comma-separated, from {','.join(VARIANTS)}")
    add_option(p, "--concurrency", type=_levels, default=(1, 64), help="closed-loop levels, e.g. 1,2,4")
    add_option(p, "--rate", type=_levels, default=(), help="open-loop request rates per second (instead)")
    add_option(p, "--duration", type=float, default=10.0, help="seconds per variant and level (0 = --count)")
    add_option(p, "--count", type=int, default=0, help="requests per variant and level (with --duration 0)")
    add_option(p, "--rounds", type=int, default=2, help="alternating rounds per level")
    add_option(p, "--beam", type=int, default=1, help="beam size for every variant")
    add_option(p, "--precision", default="fp32", choices=["fp32", "int8"], help="bundle graphs to run")
    add_option(p, "--workers", type=int, default=2, help="baseline worker threads (one request each)")
    add_option(p, "--threads", type=int, default=1, help="intra-op threads per baseline worker")
    add_option(p, "--server-threads", type=int, default=0, help="server intra-op threads; 0 = per core")
    add_option(p, "--max-rows", type=int, default=128, help="server/scheduler decoder rows per step")
    add_option(
        p,
        "--server",
        default="",
        help="use a running server at HOST:PORT instead of starting one (pass the --bundle it serves: "
        "the other variants and the JSON's conditions use it)",
    )
    add_option(p, "--out", type=Path, default=Path("bench.json"), help="JSON results file")
    add_option(p, "--plot", type=Path, default=None, help="PNG of tokens/s and p99 against concurrency")
    p.set_defaults(func=bench)

    s = sub.add_parser("bench-step", help="decoder step FLOP/s as a fraction of ONNX Runtime's MatMul rate")
    add_option(
        s, "--bundle", type=Path, default=DEFAULT_BUNDLE_DIR, env="S2S_BENCH_BUNDLE", help="bundle dir"
    )
    add_option(s, "--rows", type=_levels, default=(1, 8, 64), help="step batch sizes")
    add_option(s, "--src-len", type=int, default=10, help="source length of the step inputs")
    add_option(s, "--threads", type=int, default=0, help="intra-op threads; 0 = one per core")
    add_option(s, "--precision", default="fp32", choices=["fp32", "int8"], help="bundle graphs to run")
    add_option(s, "--out", type=Path, default=Path("bench-step.json"), help="JSON results file")
    s.set_defaults(func=bench_step)


def _make_variants(args, bundle, setup) -> list:
    from benchmarks.serving import variants as v

    made = []
    for name in [n.strip() for n in args.variants.split(",") if n.strip()]:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {VARIANTS}")
        if name == "torch":
            if args.checkpoint is None:
                raise SystemExit("the torch variant needs --checkpoint")
            made.append(v.TorchEager(bundle, setup, args.checkpoint))
        elif name == "ort":
            made.append(v.OrtPerRequest(bundle, setup))
        elif name == "sched":
            made.append(v.InProcessScheduler(bundle, setup, args.max_rows))
        elif name == "grpc-floor":
            made.append(v.GrpcFloor(bundle, setup))
        elif name == "grpc-floor-layers":
            made.append(v.GrpcFloorLayers(bundle, setup))
        elif name == "server-pool":
            made.append(v.GrpcPool(bundle, setup))
        else:
            per_request = name == "server-per-request"
            target = None if per_request else args.server or None  # --server is the batching one
            stream = name in ("server-stream", "server-process-stream")
            engine = "process" if name.startswith("server-process") else "thread"
            made.append(v.GrpcServer(bundle, setup, stream, target, args.max_rows, per_request, engine))
    return made


def _bundle(path):  # -> s2s.bundle.Bundle | None: None after saying why it cannot be used
    from s2s.bundle import BundleError, load_bundle

    try:
        return load_bundle(path)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def bench(args: argparse.Namespace) -> int:
    from benchmarks.serving.inputs import load_inputs
    from benchmarks.serving.run import (
        BenchPlan,
        combine,
        conditions,
        format_table,
        plot_sweep,
        run_plan,
        write_json,
    )
    from benchmarks.serving.variants import DecodeSetup

    bundle = _bundle(args.bundle)
    if bundle is None:
        return EXIT_USAGE
    texts = load_inputs(args.inputs, args.limit or None)
    setup = DecodeSetup(args.beam, args.precision, args.workers, args.threads, args.server_threads)
    plan = BenchPlan(
        levels=args.rate or args.concurrency,
        open_loop=bool(args.rate),
        duration_s=args.duration or None,
        count=args.count or None,
        rounds=args.rounds,
    )
    variants = _make_variants(args, bundle, setup)

    async def main() -> list[dict]:
        started = []
        try:
            for variant in variants:
                await variant.start()
                started.append(variant)
            return await run_plan(variants, texts, plan)
        finally:
            for variant in started:
                await variant.stop()

    runs = asyncio.run(main())
    summary = combine(runs)
    table = format_table(summary, plan.open_loop)
    print(table)
    payload = {"conditions": conditions(bundle, setup, args.inputs, len(texts), plan), "summary": summary}
    payload["runs"] = runs
    write_json(args.out, payload)
    print(f"results written to {args.out}")
    if args.plot is not None:
        title = f"{bundle.name}, beam {args.beam}, {args.precision}, {len(texts)} inputs"
        plot_sweep(summary, args.plot, title)
        print(f"plot written to {args.plot}")
    return 0


def bench_step(args: argparse.Namespace) -> int:
    from benchmarks.serving.run import write_json
    from benchmarks.serving.step_rate import format_step_table, measure

    bundle = _bundle(args.bundle)
    if bundle is None:
        return EXIT_USAGE
    rows = tuple(int(r) for r in args.rows)
    results = measure(bundle, rows, args.src_len, args.threads, precision=args.precision)
    print(format_step_table(results))
    write_json(args.out, {"bundle": f"{bundle.name}/{bundle.version}", "results": results})
    print(f"results written to {args.out}")
    return 0
