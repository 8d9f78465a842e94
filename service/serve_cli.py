"""`s2s serve`: options and S2S_* variables become one frozen ServerConfig (service/config.py).

Torch-free and light at import: `s2s --help` builds every parser, so ONNX Runtime and gRPC are
imported inside the command function.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from s2s.cli import EXIT_USAGE
from s2s.options import add_option

log = logging.getLogger(__name__)

# Shown in --help without importing the dataclasses (that would load ONNX Runtime);
# tests/unit/service/test_serve_cli.py checks they equal RunnerConfig, SchedulerConfig, ServerConfig
# and CallLimits.
DEFAULTS = {
    "threads": 0,
    "graph_optimization": "all",
    "max_rows": 64,
    "max_queue": 64,
    "max_batch_wait_ms": 0.0,
    "admit_min_rows": 16,
    "admit_max_wait_ms": 5.0,
    "max_requests": 0,
    "decode_threads": 1,
    "engine": "thread",
    "engine_nice": 10,
    "max_beam": 16,
    "max_src_tokens": 256,
    "max_output_len": 512,
    "max_texts": 64,
    "max_text_chars": 2000,
    "max_attention_values": 1_000_000,
    "grace_period": 10.0,
    "max_calls": 256,
    "max_streams": 64,
    "max_health_calls": 64,
    "max_decoding": 0,
    "max_receive_bytes": 0,
}


def port_or_off(text: str) -> int | None:
    """A port number, 0 for a free one, or "off"/-1 for none (the metrics and health ports)."""
    if text.strip().lower() in ("off", "-1", "none", ""):
        return None
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, -1 or off; got {port}")
    return port


def _bundle_paths(text: str) -> list[Path]:
    return [Path(p.strip()) for p in text.split(",") if p.strip()]


class _BundleAction(argparse.Action):
    """--bundle is repeatable and comma-separated; given on the command line it replaces S2S_BUNDLE."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        if not getattr(namespace, "_bundle_from_cli", False):
            namespace.bundle, namespace._bundle_from_cli = [], True
        namespace.bundle.extend(values)


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve model bundles over gRPC", description=serve.__doc__)
    add_option(p, "--host", default="0.0.0.0", help="address to listen on")
    add_option(p, "--port", type=int, default=50051, help="gRPC port; 0 picks a free one (printed)")
    add_option(
        p,
        "--metrics-port",
        type=port_or_off,
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
        help="decoder rows waiting to join (a text with beam b needs b); "
        "a call that does not fit gets RESOURCE_EXHAUSTED",
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
        "--admit-min-rows",
        type=int,
        default=DEFAULTS["admit_min_rows"],
        help="while the batch is over half full, waiting requests join once they fill this many "
        "rows or once --admit-max-wait-ms passed; 1 = join at every step",
    )
    add_option(
        p,
        "--admit-max-wait-ms",
        type=float,
        default=DEFAULTS["admit_max_wait_ms"],
        help="the longest a request waits for its group to join a busy batch",
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
    add_option(
        p,
        "--engine",
        choices=("thread", "process"),
        default=DEFAULTS["engine"],
        help="where the decode loop runs: a thread of the server, or a process of its own per model "
        "(off the GIL that gRPC holds; restarted if it dies)",
    )
    add_option(
        p, "--engine-nice", type=int, default=DEFAULTS["engine_nice"],
        help="niceness of the process engine (0-19): the event loop wins shared cores",
    )  # fmt: skip
    add_option(p, "--max-texts", type=int, default=DEFAULTS["max_texts"], help="texts per Translate call")
    add_option(
        p, "--max-text-chars", type=int, default=DEFAULTS["max_text_chars"], help="characters per text"
    )
    add_option(
        p, "--max-attention-values", type=int, default=DEFAULTS["max_attention_values"],
        help="attention values a call asking for attention may hold (texts x beam x output x source tokens)",
    )  # fmt: skip
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
    _add_admission(p)
    _add_security(p)
    p.set_defaults(func=serve)


def _add_admission(p: argparse.ArgumentParser) -> None:
    add_option(
        p, "--max-calls", type=int, default=DEFAULTS["max_calls"],
        help="calls in progress at once (Translator, Admin, reflection); beyond it RESOURCE_EXHAUSTED",
    )  # fmt: skip
    add_option(
        p, "--max-streams", type=int, default=DEFAULTS["max_streams"],
        help="TranslateStream calls in progress at once (each also counts against --max-calls)",
    )  # fmt: skip
    add_option(
        p, "--max-decoding-calls", type=int, default=DEFAULTS["max_decoding"],
        help="Translate/TranslateStream calls in progress at once; 0 = --max-rows (more can only wait)",
    )  # fmt: skip
    add_option(
        p, "--max-health-calls", type=int, default=DEFAULTS["max_health_calls"],
        help="health Check/Watch calls in progress at once (their own pool: probes never wait behind work)",
    )  # fmt: skip
    add_option(
        p, "--max-receive-bytes", type=int, default=DEFAULTS["max_receive_bytes"],
        help="largest request message; 0 = what --max-texts texts of --max-text-chars need",
    )  # fmt: skip


def _add_security(p: argparse.ArgumentParser) -> None:
    add_option(p, "--tls-cert", type=Path, help="server certificate chain (PEM); with --tls-key turns TLS on")
    add_option(p, "--tls-key", type=Path, help="the certificate's private key (PEM)")
    add_option(
        p, "--tls-client-ca", type=Path,
        help="CA bundle (PEM) for client certificates: mutual TLS, clients without one are refused",
    )  # fmt: skip
    add_option(
        p, "--health-port", type=port_or_off, default=None,
        help="plaintext port answering gRPC health only (probes that cannot speak TLS); off or -1 disables",
    )  # fmt: skip
    add_option(
        p, "--auth-tokens", type=Path,
        help="file of bearer tokens ('TOKEN [translate,admin]' per line), re-read when it changes",
    )  # fmt: skip
    add_option(
        p, "--access-log", flag_bool=True, default=False,
        help="log one line per call (method, code, ms, model, texts, peer); never the text",
    )  # fmt: skip


def server_config(args: argparse.Namespace):  # -> service.config.ServerConfig (imported lazily)
    """The parsed `s2s serve` options as one ServerConfig (raises ValueError on bad values)."""
    from engine.sessions import RunnerConfig
    from service.admission import CallLimits
    from service.config import ServerConfig
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
            admit_min_rows=args.admit_min_rows,
            admit_max_wait_ms=args.admit_max_wait_ms,
            max_requests=args.max_requests,
            decode_threads=args.decode_threads,
            engine=args.engine,
            engine_nice=args.engine_nice,
            max_beam=args.max_beam,
            max_src_tokens=args.max_src_tokens,
            max_output_len=args.max_output_len,
        ),
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
        max_attention_values=args.max_attention_values,
        grace_period_s=args.grace_period,
        warmup=args.warmup,
        calls=CallLimits(args.max_calls, args.max_streams, args.max_health_calls, args.max_decoding_calls),
        max_receive_bytes=args.max_receive_bytes,
        tls=_tls_config(args),
        health_port=args.health_port,
        auth_tokens=args.auth_tokens,
        access_log=args.access_log,
    )


def _tls_config(args: argparse.Namespace):  # -> service.tls.TlsConfig | None
    from service.tls import TlsConfig

    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise ValueError("--tls-client-ca needs TLS on: give --tls-cert and --tls-key too")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    return TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca)


def serve(args: argparse.Namespace) -> int:
    """Serve the bundles over gRPC until SIGTERM/SIGINT, then drain for the grace period."""
    import asyncio

    from engine.sessions import ProviderUnavailable
    from s2s.bundle import BundleError
    from service.server import StartupError
    from service.server import serve as run_server

    try:
        config = server_config(args)
    except ValueError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_USAGE  # a start-up failure is a bad bundle, port, certificate or setting
    from engine.allocator import tune_allocator

    tune_allocator()  # the thread engine decodes in this process (the process engine sets its own)
    try:
        asyncio.run(run_server(config))
    except (BundleError, ProviderUnavailable, StartupError) as exc:
        log.error("cannot start the server: %s", exc)
        return EXIT_USAGE  # a start-up failure is a bad bundle, port, certificate or setting
    return 0
