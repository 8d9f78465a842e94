"""service/responses.py: messages from search results, replace_unk, stream prefix bookkeeping."""

from __future__ import annotations

import numpy as np

from s2s.search import Hypothesis
from s2s.tokenizer import UNK_ID, Tokenizer
from s2s.unk import output_pieces
from s2s.v1 import translator_pb2 as pb
from service.config import Limits
from service.responses import StreamText, translation_result
from service.validation import validate_options, validate_texts

SRC = Tokenizer.build(["the cat sat"], kind="word")
TGT = Tokenizer.build(["le chat assis"], kind="word")
LIMITS = Limits()


def _settings(**options):  # type: ignore[no-untyped-def]
    return validate_options(pb.DecodeOptions(**options), LIMITS, 50, None)


def _hyp(tokens: list[int], attention: np.ndarray | None = None) -> Hypothesis:
    return Hypothesis(tokens, [-0.5] * len(tokens), -1.0, -1.5, "eos", attention)


def test_replace_unk_copies_the_most_attended_source_piece() -> None:
    [source] = validate_texts(["the Zorg sat"], SRC, LIMITS)
    assert source.ids[1] == UNK_ID
    le = TGT.encode("le")[0]
    attention = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2]], dtype=np.float32)
    pieces, replaced = output_pieces([le, UNK_ID], attention, source.pieces, TGT, replace_unk=True)
    assert pieces == ["▁le", "▁Zorg"]
    assert replaced == [False, True]
    plain = output_pieces([le, UNK_ID], attention, source.pieces, TGT, replace_unk=False)
    assert plain[0] == ["▁le", "<unk>"]


def test_result_has_text_attention_shape_and_flags() -> None:
    [source] = validate_texts(["the Zorg"], SRC, LIMITS)
    le = TGT.encode("le")[0]
    attention = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]], dtype=np.float32)  # a padded column
    settings = _settings(return_attention=True, replace_unk=True)
    result = translation_result([_hyp([le, UNK_ID], attention)], source, TGT, settings)
    hyp = result.hypotheses[0]
    assert hyp.text == "le Zorg"
    assert hyp.unk_replaced
    assert (hyp.attention.rows, hyp.attention.cols) == (2, 2)
    assert list(hyp.attention.source_tokens) == ["▁the", "▁Zorg"]
    assert hyp.finish_reason == pb.FINISH_REASON_EOS
    assert result.source_unknown_tokens == 1


def test_attention_is_left_out_unless_asked() -> None:
    [source] = validate_texts(["the cat"], SRC, LIMITS)
    attention = np.full((1, 2), 0.5, dtype=np.float32)
    result = translation_result([_hyp([TGT.encode("le")[0]], attention)], source, TGT, _settings())
    assert not result.hypotheses[0].HasField("attention")


def test_stream_sends_each_position_once_and_builds_the_text() -> None:
    [source] = validate_texts(["the cat"], SRC, LIMITS)
    le, chat = TGT.encode("le chat")
    stream = StreamText(source, TGT, _settings(beam_size=2))
    first = stream.events(0, [le], None, None)
    # The final result repeats the prefix: only the tail is new.
    rest = stream.events(0, [le, chat], [-0.1, -0.2], None)
    assert [m.token.index for m in first + rest] == [0, 1]
    assert not first[0].token.HasField("log_prob")
    assert rest[0].token.log_prob == np.float32(-0.2)
    assert rest[0].token.text == "le chat"
