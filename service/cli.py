"""`s2s serve`, `s2s translate` and `s2s bench` (registered by s2s/cli.py through add_commands).

Torch-free and light at import: `s2s --help` builds every parser, so ONNX Runtime, gRPC and
matplotlib are imported inside the command functions. Every option also reads an S2S_*
environment variable (s2s/options.py); the parsed options become one frozen ServerConfig.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from s2s.options import add_option

log = logging.getLogger(__name__)

# Shown in --help without importing the dataclasses (that would load ONNX Runtime);
# tests/unit/service/test_cli.py checks they equal RunnerConfig, SchedulerConfig and ServerConfig.
DEFAULTS = {
    "threads": 0,
    "graph_optimization": "all",
    "max_rows": 64,
    "max_queue": 256,
    "max_batch_wait_ms": 0.0,
    "max_requests": 0,
    "decode_threads": 1,
    "max_beam": 16,
    "max_src_tokens": 256,
    "max_output_len": 512,
    "max_texts": 64,
    "max_text_chars": 2000,
    "grace_period": 10.0,
}
EXIT_STARTUP_FAILED = 2


def metrics_port(text: str) -> int | None:
    """A port number, 0 for a free one, or "off"/-1 for no metrics endpoint."""
    if text.strip().lower() in ("off", "-1", "none", ""):
        return None
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"metrics port must be 0..65535, -1 or off; got {port}")
    return port


def _bundle_paths(text: str) -> list[Path]:
    return [Path(p.strip()) for p in text.split(",") if p.strip()]


class _BundleAction(argparse.Action):
    """--bundle is repeatable and comma-separated; given on the command line it replaces S2S_BUNDLE."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        if not getattr(namespace, "_bundle_from_cli", False):
            namespace.bundle, namespace._bundle_from_cli = [], True
        namespace.bundle.extend(values)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve model bundles over gRPC", description=serve.__doc__)
    add_option(p, "--host", default="0.0.0.0", help="address to listen on")
    add_option(p, "--port", type=int, default=50051, help="gRPC port; 0 picks a free one (printed)")
    add_option(
        p,
        "--metrics-port",
        type=metrics_port,
        default=8000,
        help="Prometheus /metrics port; 0 picks a free one; off or -1 disables",
    )
    env_bundles = os.environ.get("S2S_BUNDLE", "")
    p.add_argument(
        "--bundle",
        action=_BundleAction,
        type=_bundle_paths,
        default=_bundle_paths(env_bundles),
        metavar="DIR",
        help="bundle directory, or a DIR/<name>/<version>/ tree; repeatable or "
        "comma-separated; the first is the default model [env S2S_BUNDLE; default: the bundled "
        "model s2s/bundles/dates/1]",
    )
    add_option(
        p, "--provider", default="cpu", choices=["cpu", "cuda"], help="ONNX Runtime execution provider"
    )
    add_option(
        p,
        "--require-provider",
        flag_bool=True,
        default=False,
        help="refuse to start if the provider is unavailable, instead of falling back to CPU",
    )
    add_option(
        p,
        "--precision",
        default="fp32",
        choices=["fp32", "int8", "fp16"],
        help="which of the bundle's graphs to run",
    )
    add_option(
        p,
        "--threads",
        type=int,
        default=DEFAULTS["threads"],
        help="intra-op threads per ONNX Runtime session; 0 = one per core",
    )
    add_option(
        p,
        "--graph-optimization",
        default=DEFAULTS["graph_optimization"],
        choices=["disable", "basic", "extended", "all"],
        help="ONNX Runtime graph optimisation level",
    )
    add_option(
        p,
        "--max-rows",
        type=int,
        default=DEFAULTS["max_rows"],
        help="decoder rows per step across requests (a beam request holds beam-size rows)",
    )
    add_option(
        p,
        "--max-queue",
        type=int,
        default=DEFAULTS["max_queue"],
        help="requests waiting to join; beyond it RESOURCE_EXHAUSTED",
    )
    add_option(
        p,
        "--max-batch-wait-ms",
        type=float,
        default=DEFAULTS["max_batch_wait_ms"],
        help="when idle, wait this long for more requests before a step",
    )
    add_option(
        p,
        "--max-requests",
        type=int,
        default=DEFAULTS["max_requests"],
        help="requests decoded together per loop; 0 = as many as --max-rows holds, 1 = no batching",
    )
    add_option(
        p,
        "--decode-threads",
        type=int,
        default=DEFAULTS["decode_threads"],
        help="decode loops sharing the model's sessions (with --max-requests 1: a worker pool)",
    )
    add_option(p, "--max-texts", type=int, default=DEFAULTS["max_texts"], help="texts per Translate call")
    add_option(
        p, "--max-text-chars", type=int, default=DEFAULTS["max_text_chars"], help="characters per text"
    )
    add_option(
        p, "--max-src-tokens", type=int, default=DEFAULTS["max_src_tokens"], help="source tokens per text"
    )
    add_option(p, "--max-beam", type=int, default=DEFAULTS["max_beam"], help="largest beam size and n-best")
    add_option(
        p,
        "--max-output-len",
        type=int,
        default=DEFAULTS["max_output_len"],
        help="largest max_length a request may ask for",
    )
    add_option(
        p,
        "--grace-period",
        type=float,
        default=DEFAULTS["grace_period"],
        help="seconds in-flight requests get to finish after SIGTERM/SIGINT",
    )
    add_option(
        p, "--warmup", flag_bool=True, default=True, help="run the graphs once before reporting SERVING"
    )
    p.set_defaults(func=serve)


def server_config(args: argparse.Namespace):  # -> service.config.ServerConfig (imported lazily)
    """The parsed `s2s serve` options as one ServerConfig (raises ValueError on bad values)."""
    from service.config import ServerConfig
    from service.runner import RunnerConfig
    from service.scheduler import SchedulerConfig

    return ServerConfig(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        bundles=tuple(args.bundle),
        runner=RunnerConfig(
            provider=args.provider,
            require_provider=args.require_provider,
            intra_op_threads=args.threads,
            optimization=args.graph_optimization,
            precision=args.precision,
        ),
        scheduler=SchedulerConfig(
            max_rows=args.max_rows,
            max_queue=args.max_queue,
            max_batch_wait_ms=args.max_batch_wait_ms,
            max_requests=args.max_requests,
            decode_threads=args.decode_threads,
            max_beam=args.max_beam,
            max_src_tokens=args.max_src_tokens,
            max_output_len=args.max_output_len,
        ),
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
        grace_period_s=args.grace_period,
        warmup=args.warmup,
    )


def serve(args: argparse.Namespace) -> int:
    """Serve the bundles over gRPC until SIGTERM/SIGINT, then drain for the grace period."""
    import asyncio

    from s2s.bundle import BundleError
    from service.runner import ProviderUnavailable
    from service.server import StartupError
    from service.server import serve as run_server

    try:
        config = server_config(args)
    except ValueError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_STARTUP_FAILED
    try:
        asyncio.run(run_server(config))
    except (BundleError, ProviderUnavailable, StartupError) as exc:
        log.error("cannot start the server: %s", exc)
        return EXIT_STARTUP_FAILED
    return 0


def _add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate", help="translate text through a running server", description=translate.__doc__
    )
    p.add_argument(
        "texts", nargs="+", metavar="TEXT", help="text(s) to translate; several make one batch call"
    )
    add_option(p, "--server", default="localhost:50051", help="server address HOST:PORT")
    add_option(p, "--model", default="", help="model NAME or NAME/VERSION; empty = the server's default")
    add_option(p, "--beam", type=int, default=None, help="beam size (server default: 1, greedy)")
    add_option(p, "--n-best", type=int, default=None, help="hypotheses to print per text (<= beam)")
    add_option(
        p, "--max-length", type=int, default=None, help="output tokens at most (server default: the model's)"
    )
    add_option(
        p, "--length-penalty", type=float, default=None, help="GNMT length penalty alpha (server default 0)"
    )
    add_option(
        p, "--replace-unk", flag_bool=True, default=False, help="replace <unk> by the most attended source"
    )
    add_option(p, "--stream", flag_bool=True, default=False, help="print tokens as the server decides them")
    add_option(p, "--attention", type=Path, default=None, help="save the attention heatmap to this PNG")
    add_option(p, "--timeout", type=float, default=30.0, help="seconds before the call gives up")
    p.set_defaults(func=translate)


def translate(args: argparse.Namespace) -> int:
    """Translate TEXT(s) with a running `s2s serve` and print the result(s)."""
    import grpc

    from service.client import StreamToken, TranslatorClient, describe_error

    options = dict(
        beam_size=args.beam,
        n_best=args.n_best,
        max_length=args.max_length,
        length_penalty=args.length_penalty,
        attention=args.attention is not None,
        replace_unk=args.replace_unk,
    )
    if args.stream and len(args.texts) > 1:
        print("error: --stream takes one text", file=sys.stderr)
        return 2
    try:
        with TranslatorClient(args.server, timeout=args.timeout) as client:
            if args.stream:
                shown = ""  # the text printed so far; each token extends it
                for item in client.stream(args.texts[0], args.model or None, **options):
                    if isinstance(item, StreamToken):
                        new = item.text[len(shown) :] if item.text.startswith(shown) else "\n" + item.text
                        print(new, end="", flush=True, file=sys.stderr)
                        shown = item.text
                    else:
                        print(file=sys.stderr)
                        translations = [item]
            else:
                translations = client.translate(args.texts, args.model or None, **options)
    except grpc.RpcError as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    for translation in translations:
        for rank, hyp in enumerate(translation.hypotheses):
            prefix = f"[{rank + 1}] ({hyp.score:.3f}) " if len(translation.hypotheses) > 1 else ""
            print(prefix + hyp.text)
    if args.attention is not None:
        from service.plot import save_attention_png

        best = translations[0].hypotheses[0]
        save_attention_png(best, args.attention)
        print(f"attention saved to {args.attention}", file=sys.stderr)
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    """`s2s bench` lives in service/bench/ (the benchmark); absent in a slim install."""
    try:
        bench = importlib.import_module("service.bench.cli")
    except ModuleNotFoundError as exc:
        if exc.name in ("service.bench", "service.bench.cli"):
            return
        raise  # a dependency of the bench is missing: say so rather than hide the command
    bench.add_commands(sub)


def add_commands(sub: argparse._SubParsersAction) -> None:
    _add_serve(sub)
    _add_translate(sub)
    _add_bench(sub)
