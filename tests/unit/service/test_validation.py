"""service/validation.py: every bad field is named, defaults fill unset options, limits hold."""

from __future__ import annotations

import pytest

from s2s.tokenizer import UNK_ID, Tokenizer
from s2s.v1 import translator_pb2 as pb
from service.config import Limits
from service.errors import InvalidRequest
from service.validation import DecodeSettings, validate_options, validate_texts

LIMITS = Limits(max_texts=4, max_text_chars=40, max_src_tokens=8, max_beam=5, max_output_len=50)
TOKENIZER = Tokenizer.build(["one two three", "four five"], kind="word")


def _violations(exc: pytest.ExceptionInfo[InvalidRequest]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


def test_unset_options_take_defaults_and_bundle_max_length_is_clamped_to_the_limit() -> None:
    settings = validate_options(
        pb.DecodeOptions(), LIMITS, default_max_length=999, default_max_length_ratio=2.0
    )
    assert settings == DecodeSettings(
        beam_size=1,
        n_best=1,
        max_length=50,
        max_length_ratio=2.0,
        length_penalty=0.0,
        return_attention=False,
        replace_unk=False,
    )


def test_max_len_for_applies_the_ratio_but_never_below_one_nor_above_the_cap() -> None:
    settings = validate_options(pb.DecodeOptions(max_length=10, max_length_ratio=1.5), LIMITS, 100, None)
    assert settings.max_len_for(4) == 6
    assert settings.max_len_for(100) == 10
    tiny = validate_options(pb.DecodeOptions(max_length_ratio=0.01), LIMITS, 100, None)
    assert tiny.max_len_for(1) == 1
    assert validate_options(pb.DecodeOptions(), LIMITS, 30, None).max_len_for(1000) == 30


def test_the_bundle_ratio_applies_only_without_an_explicit_max_length() -> None:
    assert validate_options(pb.DecodeOptions(), LIMITS, 40, 2.0).max_len_for(5) == 10
    assert validate_options(pb.DecodeOptions(max_length=40), LIMITS, 40, 2.0).max_len_for(5) == 40
    both = pb.DecodeOptions(max_length=40, max_length_ratio=3.0)
    assert validate_options(both, LIMITS, 40, 2.0).max_len_for(5) == 15


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (pb.DecodeOptions(beam_size=0), "options.beam_size"),
        (pb.DecodeOptions(beam_size=-3), "options.beam_size"),
        (pb.DecodeOptions(beam_size=6), "options.beam_size"),
        (pb.DecodeOptions(beam_size=2, n_best=3), "options.n_best"),
        (pb.DecodeOptions(n_best=0), "options.n_best"),
        (pb.DecodeOptions(max_length=0), "options.max_length"),
        (pb.DecodeOptions(max_length=10**9), "options.max_length"),
        (pb.DecodeOptions(max_length_ratio=0.0), "options.max_length_ratio"),
        (pb.DecodeOptions(max_length_ratio=float("nan")), "options.max_length_ratio"),
        (pb.DecodeOptions(length_penalty=-0.5), "options.length_penalty"),
        (pb.DecodeOptions(length_penalty=float("inf")), "options.length_penalty"),
    ],
)
def test_bad_options_name_their_field(options: pb.DecodeOptions, field: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        validate_options(options, LIMITS, 20, None)
    assert field in _violations(exc), exc.value.violations


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequest) as exc:
        validate_options(pb.DecodeOptions(beam_size=0, max_length=0, length_penalty=-1), LIMITS, 20, None)
    assert set(_violations(exc)) == {"options.beam_size", "options.max_length", "options.length_penalty"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   \t\n", "whitespace"),
        ("one\x00two", "NUL"),
        ("x" * 41, "41 characters"),
        ("one " * 9, "9 tokens"),
    ],
)
def test_bad_texts_are_named_by_index(text: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        validate_texts(["one two", text], TOKENIZER, LIMITS)
    violations = _violations(exc)
    assert list(violations) == ["texts[1]"]
    assert words in violations["texts[1]"]


def test_stream_text_field_is_not_indexed() -> None:
    with pytest.raises(InvalidRequest) as exc:
        validate_texts([""], TOKENIZER, LIMITS, field="text", indexed=False)
    assert list(_violations(exc)) == ["text"]


def test_no_texts_and_too_many_texts_are_rejected() -> None:
    with pytest.raises(InvalidRequest, match="at least one"):
        validate_texts([], TOKENIZER, LIMITS)
    with pytest.raises(InvalidRequest, match="limit is 4"):
        validate_texts(["one"] * 5, TOKENIZER, LIMITS)


def test_unseen_scripts_and_emoji_are_not_errors_but_counted_unknown() -> None:
    [source] = validate_texts(["one 🙂 два"], TOKENIZER, LIMITS)
    assert source.ids[0] == TOKENIZER.encode("one")[0]
    assert source.ids[1:] == [UNK_ID, UNK_ID]
    assert source.unknown == 2
    assert source.pieces == ["▁one", "▁🙂", "▁два"]
