"""service/validation.py: every bad field is named, defaults fill unset options, limits hold."""

from __future__ import annotations

import pytest

from engine.config import DecodeConfig
from s2s.tokenizer import UNK_ID, Tokenizer
from s2s.v1 import translator_pb2 as pb
from service.config import Limits
from service.errors import InvalidRequest
from service.validation import DecodeSettings, OptionValues, validate_options, validate_texts

LIMITS = Limits(max_texts=4, max_text_chars=40, max_src_tokens=8, max_beam=5, max_output_len=50)
TOKENIZER = Tokenizer.build(["one two three", "four five"], kind="word")


def _violations(exc: pytest.ExceptionInfo[InvalidRequest]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


def test_unset_options_take_defaults_and_bundle_max_length_is_clamped_to_the_limit() -> None:
    settings = validate_options(
        pb.DecodeOptions(), LIMITS, default_max_length=999, default_max_length_ratio=2.0
    )
    assert settings == DecodeSettings(
        decode=DecodeConfig(
            beam_size=1,
            n_best=1,
            max_length=50,
            max_length_ratio=2.0,
            length_penalty=0.0,
            keep_attention=False,
        ),
        return_attention=False,
        replace_unk=False,
    )


def _max_len(options: pb.DecodeOptions, src_len: int, default: int, default_ratio: float | None) -> int:
    """The output-token cap the validated settings give a source of `src_len` tokens."""
    return validate_options(options, LIMITS, default, default_ratio).decode.max_len_for(src_len)


def test_max_len_for_applies_the_ratio_but_never_below_one_nor_above_the_cap() -> None:
    options = pb.DecodeOptions(max_length=10, max_length_ratio=1.5)
    assert _max_len(options, 4, 100, None) == 6
    assert _max_len(options, 100, 100, None) == 10
    assert _max_len(pb.DecodeOptions(max_length_ratio=0.01), 1, 100, None) == 1
    assert _max_len(pb.DecodeOptions(), 1000, 30, None) == 30


def test_the_bundle_ratio_applies_only_without_an_explicit_max_length() -> None:
    assert _max_len(pb.DecodeOptions(), 5, 40, 2.0) == 10
    assert _max_len(pb.DecodeOptions(max_length=40), 5, 40, 2.0) == 40
    assert _max_len(pb.DecodeOptions(max_length=40, max_length_ratio=3.0), 5, 40, 2.0) == 15


def test_the_engine_keeps_attention_for_return_attention_and_for_replace_unk() -> None:
    for options, kept in (
        (pb.DecodeOptions(), False),
        (pb.DecodeOptions(return_attention=True), True),
        (pb.DecodeOptions(replace_unk=True), True),  # replace_unk reads the attention rows
    ):
        settings = validate_options(options, LIMITS, 20, None)
        assert settings.decode.keep_attention is kept, options
        assert settings.return_attention == options.return_attention
        assert settings.replace_unk == options.replace_unk


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
    "fields",
    [
        {},
        {"beam_size": 4, "n_best": 2, "length_penalty": 0.6},
        {"max_length": 7},
        {"max_length": 40, "max_length_ratio": 3.0, "replace_unk": True},
        {"return_attention": True, "beam_size": 1},
        {"beam_size": 2, "n_best": 3, "max_length": 0, "length_penalty": -1.0},  # every one bad
    ],
)
def test_plain_option_values_validate_as_the_protobuf_message_does(fields: dict) -> None:
    # Offline translation passes OptionValues; the server, DecodeOptions: one set of rules.
    def outcome(options):
        try:
            return validate_options(options, LIMITS, 20, 2.0)
        except InvalidRequest as exc:
            return [(v.field, v.description) for v in exc.violations]

    assert outcome(OptionValues(**fields)) == outcome(pb.DecodeOptions(**fields))


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


_CORPUS = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "Café déjà vu"]


@pytest.mark.parametrize(
    "tokenizer",
    [
        Tokenizer.build(_CORPUS, kind="word"),
        Tokenizer.build(_CORPUS, kind="char"),
        Tokenizer.learn_bpe(_CORPUS, vocab_size=40),
    ],
    ids=["word", "char", "bpe"],
)
def test_a_text_is_tokenised_once_into_the_ids_encode_gives(tokenizer: Tokenizer) -> None:
    texts = ["the cat sat", "  a   dog\tand a cat ", "Café zebra ☃", "the mat"]
    sources = validate_texts(texts, tokenizer, Limits())
    for text, source in zip(texts, sources, strict=True):
        assert source.ids == tokenizer.encode(text) and source.pieces == tokenizer.split(text)
        assert source.unknown == tokenizer.count_unknown(source.ids)
    assert any(source.unknown for source in sources)  # an unseen word or character is in there
