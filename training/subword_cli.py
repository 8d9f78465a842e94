"""`s2s subword train` and `s2s subword encode`: BPE vocabularies learned from a pair file's
training split, written as a tokeniser file that `s2s train --src-tokenizer/--tgt-tokenizer` reads
and that checkpoints and bundles then carry (s2s.subword, s2s.tokenizer). Torch-free.

    s2s subword train --data ../shared/data/eng-fra.tsv --side tgt --vocab-size 4000 --out fra.json
    s2s subword encode --tokenizer fra.json "Je suis incroyablement fatiguée."
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from s2s.cli import EXIT_OK, EXIT_USAGE
from s2s.options import add_option
from s2s.tokenizer import NORMALIZATIONS, Tokenizer, TokenizerError

log = logging.getLogger(__name__)
SIDES = ("src", "tgt", "both")


def learn(
    data: str,
    side: str,
    vocab_size: int,
    *,
    reverse: bool = False,
    lowercase: bool = False,
    normalization: str = "NFC",
) -> tuple[Tokenizer, dict]:
    """A BPE tokeniser learned on the training split of a pair file (validation and test lines
    never seen), and a report: sizes, pieces per word and the round trip on every split."""
    from training.pairs import read_pairs, reversed_pairs, split_pairs

    pairs = read_pairs(data)
    splits = split_pairs(reversed_pairs(pairs) if reverse else pairs)
    sides = ("src", "tgt") if side == "both" else (side,)

    def texts(split: list) -> list[str]:
        return [getattr(p, s) for p in split for s in sides]

    tok = Tokenizer.learn_bpe(
        texts(splits.train), vocab_size, normalization=normalization, lowercase=lowercase
    )
    words = Tokenizer("word", tok.tokens[:5], normalization, lowercase)  # split() only
    report: dict = {"data": data, "side": side, "reverse": reverse}
    report.update(vocab_size=len(tok), merges=len(tok.merges))
    for name in ("train", "valid", "test"):
        lines = texts(getattr(splits, name))
        ids = [tok.encode(t) for t in lines]
        report[name] = {
            "texts": len(lines),
            "pieces_per_word": round(sum(map(len, ids)) / max(1, sum(len(words.split(t)) for t in lines)), 3),
            "unknown_pieces": sum(i.count(3) for i in ids),
            # decode(encode(s)) == s up to normalisation and whitespace runs; only an unseen
            # character (<unk>) can break it.
            "round_trip_failures": sum(
                tok.decode(i) != " ".join(tok.normalize(t).split()) for t, i in zip(lines, ids, strict=True)
            ),
        }
    return tok, report


def _train_command(args: argparse.Namespace) -> int:
    from training.pairs import DataError

    try:
        tok, report = learn(
            args.data,
            args.side,
            args.vocab_size,
            reverse=args.reverse,
            lowercase=args.lowercase,
            normalization=args.normalization,
        )
    except (DataError, TokenizerError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The tokeniser dict as checkpoints and bundles store it, plus how it was learned (ignored
    # when loaded).
    out.write_text(
        json.dumps({**tok.to_dict(), "learned": report}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"{out}: {report['vocab_size']} pieces ({report['merges']} merges) from {args.data} [{args.side}]")
    for name in ("train", "valid", "test"):
        r = report[name]
        print(
            f"  {name:5s} {r['texts']:6d} texts, {r['pieces_per_word']:.3f} pieces a word, "
            f"{r['unknown_pieces']} <unk>, {r['round_trip_failures']} round-trip failures"
        )
    return EXIT_OK


def _encode_command(args: argparse.Namespace) -> int:
    from training.pairs import DataError, load_tokenizer

    try:
        tok = load_tokenizer(args.tokenizer)
    except DataError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    for text in args.texts:
        pieces = tok.split(text)
        print(" ".join(pieces) if args.pieces else " ".join(map(str, tok.encode(text))))
    return EXIT_OK


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "subword",
        help="learn and apply BPE subword vocabularies",
        description="Subword (BPE) vocabularies for s2s train --src-tokenizer / --tgt-tokenizer.",
    )
    sub = p.add_subparsers(dest="subword_command", metavar="SUBCOMMAND", required=True)
    t = sub.add_parser(
        "train",
        help="learn a BPE vocabulary from a pair file's training split",
        description="Learn BPE merges on the training split of a pair file (one side or both) and "
        "write the tokeniser as JSON; reports pieces per word and the decode(encode(s)) round trip "
        "of every split.",
    )
    add_option(
        t,
        "--data",
        default="../shared/data/eng-fra.tsv",
        help="source<TAB>target pair file",
        env="S2S_SUBWORD_DATA",
    )
    add_option(
        t,
        "--side",
        default="tgt",
        choices=list(SIDES),
        env="S2S_SUBWORD_SIDE",
        help="which column to learn from (both: one joint vocabulary)",
    )
    add_option(
        t,
        "--reverse",
        default=False,
        flag_bool=True,
        env="S2S_SUBWORD_REVERSE",
        help="swap the columns first, as s2s train --reverse does",
    )
    add_option(
        t,
        "--vocab-size",
        type=int,
        default=4000,
        env="S2S_SUBWORD_VOCAB_SIZE",
        help="pieces in the vocabulary, the four special tokens included",
    )
    add_option(
        t,
        "--lowercase",
        default=False,
        flag_bool=True,
        env="S2S_SUBWORD_LOWERCASE",
        help="lowercase text before learning and cutting",
    )
    add_option(
        t,
        "--normalization",
        default="NFC",
        choices=list(NORMALIZATIONS),
        env="S2S_SUBWORD_NORMALIZATION",
        help="Unicode form applied before cutting",
    )
    add_option(
        t,
        "--out",
        default="artifacts/subword/tokenizer.json",
        env="S2S_SUBWORD_OUT",
        help="tokeniser file to write (JSON)",
    )
    t.set_defaults(func=_train_command)
    e = sub.add_parser(
        "encode",
        help="cut text with a tokeniser file",
        description="Print each text's ids (or pieces, with --pieces) under a tokeniser file.",
    )
    add_option(
        e,
        "--tokenizer",
        default="artifacts/subword/tokenizer.json",
        env="S2S_SUBWORD_TOKENIZER",
        help="tokeniser file from s2s subword train",
    )
    add_option(
        e,
        "--pieces",
        default=True,
        flag_bool=True,
        env="S2S_SUBWORD_PIECES",
        help="print pieces (--no-pieces: ids)",
    )
    e.add_argument("texts", nargs="+", help="texts to cut")
    e.set_defaults(func=_encode_command)
