"""`s2s train`, `s2s evaluate`, `s2s plot-attention`, `s2s plot-curves`. Torch-free at import: torch
and the training modules load inside the command functions, so `s2s --help` and the server stay
light. Exit codes: s2s.cli's (2 for a bad flag, value or input file, 1 for a failure)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from s2s.cli import EXIT_OK, EXIT_USAGE
from s2s.options import add_option
from training.config import ConfigError, TrainConfig, load_config_file

log = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = "artifacts/dates/checkpoint.pt"


# -- train ----------------------------------------------------------------------------------------
def _add_train_options(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser,
        "--config",
        default="",
        help="JSON or YAML file of training options "
        "(keys as below, with - or _); command-line flags win over it",
    )
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        kwargs = {"help": f.metadata["help"], "default": f.default, "env": "S2S_TRAIN_" + f.name.upper()}
        if kind is bool:
            add_option(parser, flag, flag_bool=True, **kwargs)
        else:
            add_option(parser, flag, type=kind, choices=f.metadata.get("choices"), **kwargs)


def build_train_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="s2s train", description="Train a model.")
    _add_train_options(parser)
    parser.set_defaults(_train_parser=parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from parsed flags, with --config file values for flags left at their default
    (command line > config file > environment > default)."""
    parser = args._train_parser
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if args.config:
        for key, value in load_config_file(args.config).items():
            if values[key] == parser.get_default(key):  # not set on the command line
                values[key] = value
    return TrainConfig(**values)


def train_command(args: argparse.Namespace) -> int:
    """`s2s train` and `python -m training.train` (torchrun)."""
    try:
        cfg = config_from_args(args)
        from training.data import DataError
        from training.model import CheckpointError
        from training.train import train
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    try:
        train(cfg)
    except (DataError, CheckpointError) as exc:  # a bad data file or --resume checkpoint
        log.error("%s", exc)
        return EXIT_USAGE
    return EXIT_OK


# -- evaluate -------------------------------------------------------------------------------------
def _add_decode_options(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint to load")
    add_option(
        parser,
        "--length-penalty",
        type=float,
        default=0.0,
        help="length penalty alpha (0: rank by raw log-prob, which favours short outputs)",
    )
    add_option(
        parser,
        "--length-norm",
        default="gnmt",
        choices=["gnmt", "avg"],
        help="gnmt: divide by ((5 + len) / 6) ** alpha; avg: by len ** alpha "
        "(alpha 1 is OpenNMT-py's default, the mean log-prob per token)",
    )
    add_option(parser, "--max-len", type=int, default=100, help="most output tokens per sentence")
    add_option(parser, "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _beam_sizes(text: str) -> list[int]:
    try:
        beams = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        beams = []
    if not beams or min(beams) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated beam sizes >= 1, e.g. 1,5; got {text!r}")
    return beams


def _load(args: argparse.Namespace):
    import torch

    from s2s.tokenizer import Tokenizer
    from training.model import load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    model, ckpt = load_checkpoint(args.checkpoint)
    return model, ckpt, Tokenizer.from_dict(ckpt["src_tokenizer"]), Tokenizer.from_dict(ckpt["tgt_tokenizer"])


def _evaluate_command(args: argparse.Namespace) -> int:
    from training import progress
    from training.data import DataError
    from training.decode import DecodeConfig
    from training.evaluate import evaluate, split_pairs_of, trained_reversed
    from training.model import CheckpointError

    try:
        model, ckpt, src_tok, tgt_tok = _load(args)
        data = args.data or ckpt["train"]["data"]
        pairs = split_pairs_of(data, args.split, trained_reversed(ckpt))
    except (CheckpointError, DataError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.limit:
        pairs = pairs[: args.limit]
    beams = args.beam_sizes
    report = {"checkpoint": args.checkpoint, "data": data, "results": []}
    print(
        f"{args.checkpoint} on {data} [{args.split}], {len(pairs)} sentences, "
        f"length penalty {args.length_penalty:g} ({args.length_norm}), "
        f"replace_unk {'on' if args.replace_unk else 'off'}"
    )
    print(
        f"{'beam':>4} {'exact %':>8} {'BLEU':>6} {'chrF':>6} {'seconds':>8} {'words/s':>8} "
        f"{'<unk>':>5} {'replaced':>8}"
    )
    for beam in beams:
        cfg = DecodeConfig(
            beam_size=beam,
            max_len=args.max_len,
            length_penalty=args.length_penalty,
            length_norm=args.length_norm,
            batch_size=args.batch_size,
        )
        bar = progress.bar(args.progress, len(pairs), f"beam {beam}", "sentence")
        on_batch = bar.update if bar is not None else None
        scores, hyps = evaluate(model, src_tok, tgt_tok, pairs, cfg, args.split, args.replace_unk, on_batch)
        if bar is not None:
            bar.close()
        print(
            f"{beam:>4} {scores.exact_match:>8.2f} {scores.bleu:>6.2f} {scores.chrf:>6.2f} "
            f"{scores.seconds:>8.1f} {scores.words_per_s:>8.0f} "
            f"{scores.unk_tokens:>5} {scores.unk_replaced:>8}"
        )
        report["results"].append(dataclasses.asdict(scores))
        for pair, hyp in list(zip(pairs, hyps, strict=True))[: args.show]:
            print(f"    {pair.src}  ->  {hyp}    (ref: {pair.tgt})")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


# -- plot-attention -------------------------------------------------------------------------------
def _plot_command(args: argparse.Namespace) -> int:
    from training.decode import DecodeConfig, decode
    from training.model import CheckpointError
    from training.plot import plot_attention

    try:
        model, _, src_tok, tgt_tok = _load(args)
    except CheckpointError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    src = src_tok.encode(args.text)
    if not src:
        log.error("text %r has no source tokens", args.text)
        return EXIT_USAGE
    cfg = DecodeConfig(
        beam_size=args.beam_size,
        max_len=args.max_len,
        length_penalty=args.length_penalty,
        length_norm=args.length_norm,
        keep_attention=True,
    )
    hyp = decode(model, [src], cfg)[0][0]
    output = tgt_tok.decode(hyp.tokens)
    path = plot_attention(
        hyp.attention,
        src_tok.pieces(src),
        tgt_tok.pieces(hyp.tokens),
        args.output,
        title=f"{args.text}  →  {output}",
    )
    print(f"{args.text} -> {output}\nwrote {path}")
    return EXIT_OK


# -- plot-curves ----------------------------------------------------------------------------------
def _curves_command(args: argparse.Namespace) -> int:
    from training.curves import CurveError, plot_curves
    from training.model import CheckpointError, read_checkpoint

    try:
        ckpt = read_checkpoint(args.checkpoint)
        history = ckpt.get("train", {}).get("history")
        if not history:
            raise CurveError(f"{args.checkpoint} holds no training history (not written by `s2s train`)")
        path = plot_curves(history, args.output, f"{ckpt.get('name', '')}: {ckpt['train'].get('data', '')}")
    except (CheckpointError, CurveError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    print(f"wrote {path}")
    return EXIT_OK


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (default: the built-in dates task)",
        description="Train an RNN encoder-decoder with attention.",
    )
    build_train_parser(p)
    p.set_defaults(func=train_command)

    p = subparsers.add_parser(
        "evaluate",
        help="exact match, BLEU and chrF of a checkpoint on a split",
        description="Decode a split of the checkpoint's data (or --data) with the PyTorch reference "
        "decoder at each beam size and print exact match, sacrebleu BLEU and chrF, and speed.",
    )
    _add_decode_options(p)
    add_option(
        p, "--data", default="", help="'dates' or a pair file (default: the checkpoint's training data)"
    )
    add_option(p, "--split", default="test", choices=["test", "valid", "train"], help="split to score")
    add_option(p, "--beam-sizes", default="1,5", type=_beam_sizes,
               help="comma-separated beam sizes to evaluate (1: greedy)")  # fmt: skip
    add_option(p, "--batch-size", type=int, default=64, help="sentences decoded together")
    add_option(p, "--limit", type=int, default=0, help="score only the first N sentences (0: all)")
    add_option(p, "--show", type=int, default=3, help="print this many example translations")
    add_option(
        p,
        "--replace-unk",
        default=False,
        flag_bool=True,
        help="replace each output <unk> by the source word it attends to most before scoring "
        "(the server's replace_unk, OpenNMT's -replace_unk; keeps the attention)",
    )
    add_option(p, "--output", default="", help="also write the results as JSON to this file")
    add_option(p, "--progress", default=True, flag_bool=True,
               help="show a progress bar on stderr (on a terminal only)")  # fmt: skip
    p.set_defaults(func=_evaluate_command)

    p = subparsers.add_parser(
        "plot-attention",
        help="PNG heatmap of the attention for one sentence",
        description="Translate one sentence and draw its attention weights as a heatmap: source "
        "tokens across, output tokens down, one row per output token.",
    )
    _add_decode_options(p)
    add_option(p, "--text", default="Tuesday, 10 July 2007", help="sentence to translate")
    add_option(p, "--output", default="attention.png", help="PNG file to write")
    add_option(p, "--beam-size", type=int, default=1, help="beam size (1: greedy)")
    p.set_defaults(func=_plot_command)

    p = subparsers.add_parser(
        "plot-curves",
        help="PNG of a checkpoint's training curves",
        description="Draw the training loss, validation loss and validation BLEU against the step "
        "from the history a checkpoint carries (what `s2s train` writes to OUT/curves.png).",
    )
    add_option(p, "--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint to read")
    add_option(p, "--output", default="curves.png", help="PNG file to write")
    p.set_defaults(func=_curves_command)
