"""`s2s translate`: translate text through a running server, with TLS, mutual TLS and tokens; or,
with --input, a whole file with no server (service/offline.py).

Torch-free and light at import; gRPC is imported inside the command function.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from s2s.cli import EXIT_FAILURE, EXIT_USAGE
from s2s.options import add_option


def add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate text through a running server, or a file offline (--input)",
        description=translate.__doc__,
    )
    p.add_argument(
        "texts", nargs="*", metavar="TEXT", help="text(s) to translate; several make one batch call"
    )
    add_option(
        p, "--input", default=None,
        help="translate this file (one source a line; - = stdin) with no server, in input order",
    )  # fmt: skip
    add_option(p, "--output", type=Path, default=None, help="with --input: write here instead of stdout")
    add_option(
        p,
        "--bundle",
        type=Path,
        default=None,
        help="with --input: the bundle to decode with (default: shipped)",
    )
    add_option(
        p, "--in-flight", type=int, default=256, help="with --input: sources decoding or queued at once"
    )
    add_option(
        p, "--threads", type=int, default=0, help="with --input: ONNX Runtime threads; 0 = one per core"
    )
    add_option(
        p,
        "--loops",
        type=int,
        default=0,
        help="with --input: decode loops sharing the threads; 0 = two",
    )
    add_option(
        p,
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="with --input: which of the bundle's graphs to run (int8: s2s export --quantize int8)",
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
    _add_connection(p)
    p.set_defaults(func=translate)


def _add_connection(p: argparse.ArgumentParser) -> None:
    add_option(
        p, "--tls", flag_bool=True, default=False, help="speak TLS (implied by --tls-ca and --tls-cert)"
    )
    add_option(
        p,
        "--tls-ca",
        type=Path,
        help="CA bundle (PEM) that signed the server's certificate; default: system roots",
    )
    add_option(p, "--tls-cert", type=Path, help="this client's certificate (PEM), for mutual TLS")
    add_option(p, "--tls-key", type=Path, help="this client's private key (PEM), for mutual TLS")
    add_option(
        p, "--tls-server-name", help="the name the server's certificate carries, if not --server's host"
    )
    add_option(p, "--token-file", type=Path, help="file holding the bearer token (or set S2S_TOKEN)")


# The server saying the request was wrong is an input error (exit 2), anything else a failure.
INPUT_ERRORS = ("INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED")


def _client(args: argparse.Namespace):  # -> service.client.TranslatorClient
    from service.client import TranslatorClient
    from service.tls import channel_credentials

    credentials = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        credentials = channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
    token = os.environ.get("S2S_TOKEN") or None
    if args.token_file is not None:
        token = args.token_file.read_text(encoding="utf-8").strip()
    return TranslatorClient(
        args.server,
        timeout=args.timeout,
        credentials=credentials,
        token=token,
        server_name=args.tls_server_name,
    )


def translate(args: argparse.Namespace) -> int:
    """Translate TEXT(s) with a running `s2s serve` and print the result(s)."""
    options = dict(
        beam_size=args.beam,
        n_best=args.n_best,
        max_length=args.max_length,
        length_penalty=args.length_penalty,
        attention=args.attention is not None,
        replace_unk=args.replace_unk,
    )
    if args.input is not None:
        if args.texts or args.stream or args.attention:
            print("error: --input takes no TEXT, --stream or --attention", file=sys.stderr)
            return EXIT_USAGE
        return _translate_file(args)
    if not args.texts:
        print("error: give TEXT(s) to translate, or --input FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.stream and len(args.texts) > 1:
        print("error: --stream takes one text", file=sys.stderr)
        return EXIT_USAGE
    # Imported here, not at the top: --input runs no client, and gRPC's import is ~0.1 s of it.
    import grpc

    from service.client import describe_error
    from service.tls import TlsError

    try:
        with _client(args) as client:
            if args.stream:
                translations = [_print_stream(client, args.texts[0], args.model or None, options)]
            else:
                translations = client.translate(args.texts, args.model or None, **options)
                _print_translations(translations)
    except (TlsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        print(f"error: {describe_error(exc)}{_hint(exc, args.server)}", file=sys.stderr)
        return EXIT_USAGE if exc.code().name in INPUT_ERRORS else EXIT_FAILURE
    if args.attention is not None:
        _save_attention(translations, args.attention)
    return 0


def _translate_file(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from service.offline_model import OfflineConfig, keep_freed_memory, start_opening

    if args.threads < 0 or args.loops < 0:
        bad = f"--threads and --loops must be >= 0, got {args.threads} and {args.loops}"
        print(f"error: {bad}", file=sys.stderr)
        return EXIT_USAGE
    config = OfflineConfig(
        bundle=args.bundle, beam_size=args.beam, n_best=args.n_best, max_length=args.max_length,
        length_penalty=args.length_penalty, replace_unk=args.replace_unk, in_flight=max(1, args.in_flight),
        threads=args.threads, loops=args.loops, precision=args.precision,
    )  # fmt: skip
    # numpy's OpenBLAS starts a thread per core as it loads (~0.07 s of start-up, each thread
    # with its own buffers); offline translation does no BLAS in numpy, ONNX Runtime has its own.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads; the user's value wins
    keep_freed_memory()  # before the job allocates: the process ends with it
    opening = start_opening(config)  # while the imports below run (service/offline_model.py)

    from s2s.bundle import BundleError
    from service.errors import InvalidRequest
    from service.offline import read_lines, translate_lines

    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        lines = read_lines(args.input)
        with (
            args.output.open("w", encoding="utf-8")
            if args.output
            else contextlib.nullcontext(sys.stdout) as out
        ):
            report = asyncio.run(translate_lines(lines, config, out, progress, opening))
    except (BundleError, InvalidRequest, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"translated {report.lines:,} lines in {report.seconds:.1f} s ({report.words_per_s:,.0f} words/s)"
          + (f"; {report.invalid} not valid sources, answered with empty lines" if report.invalid else ""),
          file=sys.stderr)  # fmt: skip
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    args.skip_teardown = True  # every line is written and the output closed (s2s.cli.main)
    return 0


def _print_translations(translations: list) -> None:
    for translation in translations:
        for rank, hyp in enumerate(translation.hypotheses):
            prefix = f"[{rank + 1}] ({hyp.score:.3f}) " if len(translation.hypotheses) > 1 else ""
            print(prefix + hyp.text)


def _print_stream(client, text: str, model: str | None, options: dict):  # -> Translation
    """Tokens go to stdout as they become final, so the line grows in place; the final result
    adds only what the stream did not show (a corrected line, the other n-best)."""
    from service.client import StreamToken

    shown = ""
    for item in client.stream(text, model, **options):
        if isinstance(item, StreamToken):
            new = item.text[len(shown) :] if item.text.startswith(shown) else "\n" + item.text
            print(new, end="", flush=True)
            shown = item.text
            continue
        best, *others = item.hypotheses
        print(best.text[len(shown) :] if best.text.startswith(shown) else "\n" + best.text)
        for rank, hyp in enumerate(others, 2):
            print(f"[{rank}] ({hyp.score:.3f}) {hyp.text}")
        return item
    raise RuntimeError("the stream ended without a result")


def _save_attention(translations: list, path: Path) -> None:
    """One PNG per text: PATH itself for one text, PATH-1.png, PATH-2.png... for several."""
    from service.plot import save_attention_png

    for i, translation in enumerate(translations, 1):
        target = path if len(translations) == 1 else path.with_name(f"{path.stem}-{i}{path.suffix or '.png'}")
        save_attention_png(translation.hypotheses[0], target)
        print(f"attention saved to {target}", file=sys.stderr)


def _hint(error, server: str) -> str:
    """What a person can do about the failures one meets first."""
    code = error.code().name
    if code == "UNAVAILABLE":
        return f"\n  hint: is `s2s serve` running at {server}? (a TLS server needs --tls or --tls-ca)"
    if code == "UNAUTHENTICATED":
        return "\n  hint: the server wants a bearer token: --token-file FILE or S2S_TOKEN"
    return ""
