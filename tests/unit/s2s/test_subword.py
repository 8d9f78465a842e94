"""BPE (s2s.subword) and the bpe tokeniser: merges learned as the algorithm says, segmentations that
join back to their word, BPE-dropout, the saved form, and exact round trips on real text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from s2s.bundle import DEFAULT_BUNDLE_DIR, MANIFEST
from s2s.subword import BPE, learn_merges, learn_vocabulary
from s2s.tokenizer import SPECIAL_TOKENS, UNK_ID, Tokenizer, TokenizerError

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
# Sennrich et al.'s example (without the end-of-word mark).
WORDS = {"low": 5, "lower": 2, "newest": 6, "widest": 3}


def test_merges_follow_pair_counts_with_ties_to_the_smallest_pair() -> None:
    # e+s and s+t both occur 9 times: the smaller pair first; then es+t (9), l+o (7), lo+w (7);
    # then "newest" holds n+e, e+w, w+est (6 each): the smallest, e+w; then ew+est before n+ew.
    expected = [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w"), ("e", "w"), ("ew", "est")]
    assert learn_merges(WORDS, 6) == expected
    # Pairs seen once are never merged: "a b" occurs once, so nothing is learned.
    assert learn_merges({"ab": 1}, 10) == []


def test_two_merges_making_one_piece_count_once() -> None:
    # "abc" can be made as a+bc or ab+c; the vocabulary must hold it once.
    pieces, merges = learn_vocabulary({"abc": 3, "bcd": 5, "ab": 4}, 4 + 4 + 3, reserved=4)
    assert len(pieces) == len(set(pieces)) and len(pieces) <= 4 + 3
    assert set(pieces) >= {"a", "b", "c", "d"}


def test_segmentation_applies_merges_by_rank_and_joins_back() -> None:
    bpe = BPE(learn_merges(WORDS, 6))
    assert bpe.segment("lowest") == ["low", "est"]
    assert bpe.segment("newer") == ["n", "ew", "e", "r"]
    assert bpe.segment("xyz") == ["x", "y", "z"]  # unknown characters stay single characters
    rng = random.Random(0)
    for word in [*WORDS, "lowest", "newer", "widow"]:
        assert "".join(bpe.segment(word)) == word
        for _ in range(20):
            assert "".join(bpe.segment(word, 0.5, rng)) == word


def test_bpe_dropout_varies_the_cut_and_draws_only_from_its_rng() -> None:
    bpe = BPE(learn_merges(WORDS, 6))
    cuts = {tuple(bpe.segment("newest", 0.3, random.Random(seed))) for seed in range(50)}
    assert ("n", "ewest") in cuts and len(cuts) > 3, cuts
    assert bpe.segment("newest", 0.3, random.Random(7)) == bpe.segment("newest", 0.3, random.Random(7))
    assert bpe.segment("newest") == ["n", "ewest"]  # no dropout: the one deterministic cut


def test_bpe_tokeniser_round_trips_and_keeps_its_saved_form() -> None:
    texts = ["Je suis fatiguée.", "Tu es fatigué ?", "Il est fatigué.", "Nous sommes fatigués !"]
    tok = Tokenizer.learn_bpe(texts, vocab_size=30)
    assert len(tok) == 30 and tok.kind == "bpe" and tok.tokens[:4] == list(SPECIAL_TOKENS)
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    assert tok.split("fatigués") == ["▁", "fatigué", "s"]
    assert tok.encode("fatigué$")[-1] == UNK_ID  # a character never seen
    saved = json.loads(json.dumps(tok.to_dict()))
    assert Tokenizer.from_dict(saved) == tok and saved["merges"][0] == list(tok.merges[0])
    rng = random.Random(1)
    for text in texts:  # BPE-dropout cuts differently but never leaves the vocabulary
        ids = tok.encode(text, 0.5, rng)
        assert UNK_ID not in ids and tok.decode(ids) == text


def test_bad_bpe_tokenisers_are_refused() -> None:
    base = list(SPECIAL_TOKENS) + ["a", "b"]
    with pytest.raises(TokenizerError, match="outside the vocabulary"):
        Tokenizer("bpe", base, merges=[("a", "b")])  # "ab" has no id
    with pytest.raises(TokenizerError, match="no BPE merges"):
        Tokenizer("word", base + ["ab"], merges=[("a", "b")])
    with pytest.raises(TokenizerError, match="repeat"):
        Tokenizer("bpe", base + ["ab"], merges=[("a", "b"), ("a", "b")])
    with pytest.raises(TokenizerError, match="below the 4 characters"):
        Tokenizer.learn_bpe(["abc"], vocab_size=6)
    with pytest.raises(TokenizerError, match="learned"):
        Tokenizer.build(["abc"], "bpe")


def test_char_and_word_tokenisers_save_as_before() -> None:
    # The shipped bundle's dicts load and save unchanged: no "merges" key appears.
    manifest = json.loads((DEFAULT_BUNDLE_DIR / MANIFEST).read_text())
    for key in ("src_tokenizer", "tgt_tokenizer"):
        assert Tokenizer.from_dict(manifest[key]).to_dict() == manifest[key]


@pytest.mark.shared_data
@pytest.mark.parametrize("column, size", [(1, 4000), (0, 2000)])
def test_eng_fra_bpe_round_trips_every_held_out_sentence(column: int, size: int) -> None:
    path = SHARED_DATA / "eng-fra.tsv"
    if not path.is_file():
        pytest.skip(f"real data not found at {path}")
    lines = [line.split("\t")[column] for line in path.read_text(encoding="utf-8").splitlines()]
    train = [t for i, t in enumerate(lines) if i % 20 not in (7, 13)]
    held_out = [t for i, t in enumerate(lines) if i % 20 in (7, 13)]
    tok = Tokenizer.learn_bpe(train, size)
    assert len(tok) == size
    words = Tokenizer("word", tok.tokens)
    failures = [t for t in held_out if tok.decode(tok.encode(t)) != " ".join(tok.normalize(t).split())]
    # Only a character the training split never shows can break the round trip (as <unk>).
    assert all(UNK_ID in tok.encode(t) for t in failures)
    assert len(failures) <= 2, failures
    pieces = sum(len(tok.split(t)) for t in held_out) / sum(len(words.split(t)) for t in held_out)
    assert 1.0 < pieces < 1.3  # subwords: more pieces than words, far fewer than characters
