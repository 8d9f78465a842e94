"""The pair reader, the standard split, and batching: bad data names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID
from training.data import DataError, batches, build_tokenizer, collate, read_pairs, split_of, split_pairs


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_pairs_drops_attribution_and_normalises_unicode(tmp_path: Path) -> None:
    decomposed = "cafe\u0301"  # "café" as e + combining acute
    path = _write(
        tmp_path, f"Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org\nCoffee.\t{decomposed}\n"
    )
    pairs = read_pairs(path)
    assert [(p.src, p.tgt, p.line) for p in pairs] == [("Hi.", "Salut !", 0), ("Coffee.", "café", 1)]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.tsv: no such file"):
        read_pairs(tmp_path / "nope.tsv")


def test_empty_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pairs.tsv: file is empty"):
        read_pairs(_write(tmp_path, "\n\n"))


def test_line_without_tab_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pairs.tsv:3: line has no tab"):
        read_pairs(_write(tmp_path, "a\tb\nc\td\nno tab here\n"))


def test_empty_side_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"pairs.tsv:2: empty target"):
        read_pairs(_write(tmp_path, "a\tb\nc\t  \n"))


def test_empty_vocabulary_names_the_data() -> None:
    with pytest.raises(DataError, match=r"corpus.tsv: vocabulary is empty"):
        build_tokenizer(["a b", "c"], "word", min_freq=5, max_size=None, source="corpus.tsv")


def test_split_by_line_number() -> None:
    assert [split_of(i) for i in (0, 7, 13, 27, 33, 40)] == [
        "train",
        "test",
        "valid",
        "test",
        "valid",
        "train",
    ]


@pytest.mark.shared_data
def test_real_eng_fra_split_sizes(eng_fra: Path) -> None:
    splits = split_pairs(read_pairs(eng_fra))
    assert len(splits.test) == 903  # the split OpenNMT-py was scored on (docs/training.md)
    assert len(splits.valid) == 903 and len(splits.train) == 18065 - 2 * 903
    assert splits.test[0].line == 7 and splits.valid[0].line == 13


def test_collate_pads_and_adds_bos_eos() -> None:
    batch = collate([([5, 6, 7], [8]), ([9], [10, 11])])
    assert batch.src.tolist() == [[5, 6, 7], [9, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 8, PAD_ID], [BOS_ID, 10, 11]]
    assert batch.tgt_out.tolist() == [[8, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert batch.num_tokens == 5


def test_shuffled_batches_are_deterministic_and_cover_every_example() -> None:
    examples = [([4] * (i % 7 + 1), [5] * (i % 3 + 1)) for i in range(100)]
    first = batches(examples, 8, shuffle=True, seed=3)
    again = batches(examples, 8, shuffle=True, seed=3)
    assert [b.src.tolist() for b in first] == [b.src.tolist() for b in again]
    assert sum(b.src.size(0) for b in first) == 100
    other = batches(examples, 8, shuffle=True, seed=4)
    assert [b.src.tolist() for b in first] != [b.src.tolist() for b in other]


def test_ranks_get_disjoint_equal_shares() -> None:
    examples = [([4] * (i % 5 + 1), [5]) for i in range(50)]
    shares = [batches(examples, 4, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 6  # 13 batches: the odd one is dropped
