"""Request validation: texts and decoding options in, checked values out, or one InvalidRequest
that lists every bad field (google.rpc.BadRequest field violations reach the client).

Pure functions over plain values and the protobuf DecodeOptions (or OptionValues, the same fields
without protobuf); no gRPC context, no scheduler.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.config import DEFAULTS, DecodeConfig
from s2s.search import MAX_LENGTH_PENALTY
from s2s.tokenizer import UNK_ID, Tokenizer
from service.errors import FieldViolation, InvalidRequest
from service.limits import Limits

if TYPE_CHECKING:  # only named in annotations: offline translation never loads protobuf
    from s2s.v1 import translator_pb2 as pb


@dataclass(frozen=True)
class DecodeSettings:
    """Validated decoding options of one request: the engine's search options, and what the
    service alone does with the result."""

    decode: DecodeConfig  # resolved (bundle caps, server limits); keeps attention for either flag below
    return_attention: bool  # send each hypothesis' attention rows to the client
    replace_unk: bool  # copy the most-attended source piece over each output <unk>


@dataclass(frozen=True)
class Source:
    """One validated source text, tokenised with the bundle's source tokeniser."""

    text: str
    ids: list[int]  # no specials
    pieces: list[str]  # as cut, before vocabulary lookup (what replace_unk copies)
    unknown: int  # how many pieces are <unk>


@dataclass(frozen=True)
class OptionValues:
    """DecodeOptions' fields as plain values, None where unset, for a caller with no protobuf
    message (`s2s translate --input`: protobuf's import was ~0.07 s of its start-up)."""

    beam_size: int | None = None
    n_best: int | None = None
    max_length: int | None = None
    max_length_ratio: float | None = None
    length_penalty: float | None = None
    return_attention: bool = False
    replace_unk: bool = False

    def __post_init__(self) -> None:
        # The message's float fields are float32 on the wire: round the same, so a length
        # penalty of 0.6 decodes alike offline and served (0.6000000238...).
        for name in ("max_length_ratio", "length_penalty"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, struct.unpack("f", struct.pack("f", value))[0])

    def HasField(self, name: str) -> bool:  # noqa: N802 - the protobuf message's own name
        return getattr(self, name) is not None


def _check_int(
    options: pb.DecodeOptions | OptionValues,
    name: str,
    default: int | None,
    low: int,
    high: int,
    bad: list[FieldViolation],
) -> int | None:
    if not options.HasField(name):
        return default
    value = getattr(options, name)
    if not low <= value <= high:
        bad.append(FieldViolation(f"options.{name}", f"must be between {low} and {high}, got {value}"))
    return value


def validate_options(
    options: pb.DecodeOptions | OptionValues,
    limits: Limits,
    default_max_length: int,
    default_max_length_ratio: float | None,
) -> DecodeSettings:
    """Check `options` against the server's limits; unset fields take the engine's defaults
    (engine/config.py: greedy, one hypothesis, length penalty 0).

    default_max_length / default_max_length_ratio come from the bundle manifest; the absolute
    default is clamped to the server's limit, so an unset max_length is never an error. The
    default ratio is dropped when the request sets max_length without a ratio.
    """
    bad: list[FieldViolation] = []
    beam = _check_int(options, "beam_size", DEFAULTS.beam_size, 1, limits.max_beam, bad)
    n_best = _check_int(options, "n_best", DEFAULTS.n_best, 1, limits.max_beam, bad)
    if n_best > beam >= 1:
        bad.append(FieldViolation("options.n_best", f"must not exceed beam_size ({beam}), got {n_best}"))
    max_length = _check_int(options, "max_length", None, 1, limits.max_output_len, bad)  # None: bundle's
    # An explicit max_length alone means exactly that cap (0: no ratio cap); the bundle's ratio
    # applies only when the caller gave no max_length (or gave a ratio of their own).
    ratio = 0.0 if options.HasField("max_length") else None
    if options.HasField("max_length_ratio"):
        ratio = options.max_length_ratio
        if not (math.isfinite(ratio) and ratio > 0):
            bad.append(FieldViolation("options.max_length_ratio", f"must be a positive number, got {ratio}"))
    penalty = DEFAULTS.length_penalty
    if options.HasField("length_penalty"):
        penalty = options.length_penalty
        if not (math.isfinite(penalty) and 0 <= penalty <= MAX_LENGTH_PENALTY):
            bad.append(
                FieldViolation(
                    "options.length_penalty", f"must be between 0 and {MAX_LENGTH_PENALTY:g}, got {penalty}"
                )
            )
    if bad:
        raise InvalidRequest(bad)
    decode = DecodeConfig(
        beam_size=beam,
        n_best=n_best,
        max_length=max_length,
        max_length_ratio=ratio,
        length_penalty=penalty,
        keep_attention=options.return_attention or options.replace_unk,  # replace_unk reads it
    )
    return DecodeSettings(
        decode=decode.resolve(min(default_max_length, limits.max_output_len), default_max_length_ratio),
        return_attention=options.return_attention,
        replace_unk=options.replace_unk,
    )


def _text_problem(text: str, limits: Limits) -> str | None:
    if not text:
        return "must not be empty"
    if len(text) > limits.max_text_chars:
        return f"has {len(text)} characters; the limit is {limits.max_text_chars}"
    if "\x00" in text:
        return "must not contain NUL characters"
    if not text.strip():
        return "must contain something besides whitespace"
    return None


def validate_texts(
    texts: Sequence[str], tokenizer: Tokenizer, limits: Limits, field: str = "texts", indexed: bool = True
) -> list[Source]:
    """Check and tokenise every text; one InvalidRequest names every bad one (`texts[i]`, or
    just `field` when not `indexed`: the stream's single `text`).

    Unknown characters or words are not an error: they become <unk> and are counted.
    """
    bad: list[FieldViolation] = []
    if not texts:
        raise InvalidRequest([FieldViolation(field, "at least one text is required")])
    if len(texts) > limits.max_texts:
        raise InvalidRequest(
            [FieldViolation(field, f"has {len(texts)} texts; the limit is {limits.max_texts} per call")]
        )
    sources: list[Source] = []
    for i, text in enumerate(texts):
        name = f"{field}[{i}]" if indexed else field
        problem = _text_problem(text, limits)  # before tokenising: never cut a huge text
        if problem is None:
            pieces = tokenizer.split(text)
            if not pieces:
                problem = "has no tokens after normalisation"
            elif len(pieces) > limits.max_src_tokens:
                problem = f"has {len(pieces)} tokens; the limit is {limits.max_src_tokens}"
        if problem is not None:
            bad.append(FieldViolation(name, problem))
            continue
        ids = tokenizer.ids(pieces)  # the pieces split above: tokenising twice cost ~20 us a text
        sources.append(Source(text, ids, pieces, sum(1 for t in ids if t == UNK_ID)))
    if bad:
        raise InvalidRequest(bad)
    return sources


def check_attention_budget(settings: DecodeSettings, sources: Sequence[Source], limits: Limits) -> None:
    """A call that asks for attention (or replace_unk, which reads it) holds beam x output x
    source values per text while it decodes and builds its answer: refuse one whose worst case
    is over the limit, before any work, rather than let it grow the server by gigabytes."""
    if not (settings.return_attention or settings.replace_unk):
        return
    decode = settings.decode
    worst = sum(decode.beam_size * decode.max_len_for(len(s.ids)) * len(s.ids) for s in sources)
    if worst > limits.max_attention_values:
        field = "options.return_attention" if settings.return_attention else "options.replace_unk"
        raise InvalidRequest(
            [
                FieldViolation(
                    field,
                    f"this call could hold {worst:,} attention values (texts x beam x output x source "
                    f"tokens); the limit is {limits.max_attention_values:,}: send fewer texts, a smaller "
                    "beam or a lower max_length",
                )
            ]
        )
