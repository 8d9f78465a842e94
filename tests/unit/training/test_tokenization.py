"""The tokenisers as training uses them: vocabularies from the training split, exact round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2s.tokenizer import PAD_ID, UNK_ID, Tokenizer
from training.data import read_pairs, split_pairs


def test_word_and_char_round_trip_and_specials() -> None:
    texts = ["Il n'en est pas question !", "Va !", "C'est l'aide."]
    for kind in ("word", "char"):
        tok = Tokenizer.build(texts, kind)
        assert tok.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and PAD_ID == 0
        for text in texts:
            assert tok.decode(tok.encode(text)) == text
    assert Tokenizer.build(texts, "word").encode("Va nulle part")[1:] == [UNK_ID, UNK_ID]


def test_min_freq_and_max_size_and_saved_form() -> None:
    tok = Tokenizer.build(["a a a b b c"], "word", min_freq=2)
    assert tok.tokens[4:] == ["▁a", "▁b"]
    assert len(Tokenizer.build(["a a a b b c"], "word", max_size=5)) == 5
    assert Tokenizer.from_dict(tok.to_dict()) == tok


@pytest.mark.shared_data
@pytest.mark.parametrize("kind", ["word", "char"])
def test_every_eng_fra_test_sentence_round_trips(eng_fra: Path, kind: str) -> None:
    splits = split_pairs(read_pairs(eng_fra))
    texts = [p.tgt for p in splits.test]
    tok = Tokenizer.build(texts, kind)  # vocabulary covering the texts: decode must give them back
    # Whitespace runs (and the narrow no-break space before French punctuation) become one space.
    for text in texts:
        assert tok.decode(tok.encode(text)) == " ".join(text.split())
