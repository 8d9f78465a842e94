"""Tied embeddings, BPE tokeniser files, BPE-dropout and --reverse in training: the tied model's
packed loss equals its per-step loss, a tied run with the weight average resumes exactly, and the
checkpoint carries the tokeniser files it was given."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from s2s.tokenizer import Tokenizer
from training.config import TrainConfig
from training.data import DataError, collate, encode_pairs, read_pairs
from training.evaluate import split_pairs_of, trained_reversed
from training.loss import packed_loss, sequence_loss
from training.model import ModelConfig, Seq2Seq, read_checkpoint
from training.train import load_data, train

EXAMPLES = [([4, 5, 6, 7], [4, 5, 6]), ([9, 4], [7]), ([5, 6, 7], [4, 8, 9, 10, 5]), ([6], [9, 9])]
ENGLISH = ["I am tired.", "You are tired.", "He is tired.", "We are so tired.", "I am here.",
           "You are here.", "They are here.", "She is very tired."]  # fmt: skip
FRENCH = ["Je suis fatigué.", "Tu es fatigué.", "Il est fatigué.", "Nous sommes si fatigués.",
          "Je suis ici.", "Tu es ici.", "Ils sont ici.", "Elle est très fatiguée."]  # fmt: skip


def _tied(emb_dim: int, hidden: int = 8) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(13, 11, score="additive", emb_dim=emb_dim, hidden=hidden, dropout=0.0,
                      tie_embeddings=True)  # fmt: skip
    return Seq2Seq(cfg)


@pytest.mark.parametrize("emb_dim", [6, 8], ids=["bottleneck", "same-size"])
def test_tied_projection_is_the_embedding_and_packed_loss_matches(emb_dim: int) -> None:
    model = _tied(emb_dim)
    dec = model.decoder
    assert dec.out.weight is dec.embed.weight and (dec.bottleneck is None) == (emb_dim == 8)
    untied = Seq2Seq(ModelConfig(13, 11, score="additive", emb_dim=emb_dim, hidden=8))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(model) == 11 * 8 - (0 if emb_dim == 8 else 8 * emb_dim)
    b = collate(EXAMPLES)
    reference = sequence_loss(model(b.src, b.src_lengths, b.tgt_in), b.tgt_out, 0.1)
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    packed_loss(model, b.src, b.src_lengths, b.tgt_in, b.tgt_out, 0.1).backward()
    for name, p in model.named_parameters():  # the embedding's gradient has both uses in it
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.tsv"
    # 160 lines: 144 training pairs, 8 validation, 8 test.
    path.write_text("".join(f"{ENGLISH[i % 8]}\t{FRENCH[i % 8]}\n" for i in range(160)), encoding="utf-8")
    return path


def _bpe_files(pair_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    from training.subword_cli import learn

    paths = []
    for side in ("src", "tgt"):
        tok, report = learn(str(pair_file), side, 40)
        assert report["valid"]["round_trip_failures"] == 0
        paths.append(tmp_path / f"{side}.json")
        paths[-1].write_text(json.dumps({**tok.to_dict(), "learned": report}), encoding="utf-8")
    return paths[0], paths[1]


def _cfg(pair_file: Path, out: Path, **extra) -> TrainConfig:
    return TrainConfig(data=str(pair_file), out=str(out), emb_dim=8, hidden=16, batch_size=16,
                       lr=5e-3, threads=1, progress=False, valid_bleu=0, **extra)  # fmt: skip


def test_a_tied_bpe_run_with_dropout_and_average_resumes_exactly(pair_file: Path, tmp_path: Path) -> None:
    src, tgt = _bpe_files(pair_file, tmp_path)
    common = dict(src_tokenizer=str(src), tgt_tokenizer=str(tgt), tie_embeddings=True, bpe_dropout=0.2,
                  ema_decay=0.9)  # fmt: skip
    straight = train(_cfg(pair_file, tmp_path / "a", epochs=2, **common))
    train(_cfg(pair_file, tmp_path / "b", epochs=1, **common))
    resumed = train(
        _cfg(pair_file, tmp_path / "b", epochs=2, resume=str(tmp_path / "b" / "last.pt"), **common)
    )
    assert straight["steps"] == resumed["steps"] == 18
    a, b = (read_checkpoint(tmp_path / run / "last.pt") for run in ("a", "b"))
    for key in ("model", "raw_model"):
        assert a[key].keys() == b[key].keys() and "decoder.out.weight" in a[key]
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0, msg=f"{key} {name}")
    learned = json.loads(tgt.read_text(encoding="utf-8"))
    assert (
        a["tgt_tokenizer"] == Tokenizer.from_dict(learned).to_dict() and a["tgt_tokenizer"]["kind"] == "bpe"
    )


def test_bpe_dropout_recuts_training_text_from_the_seed(pair_file: Path, tmp_path: Path) -> None:
    src, tgt = (Tokenizer.from_dict(json.loads(p.read_text())) for p in _bpe_files(pair_file, tmp_path))
    pairs = read_pairs(pair_file)[:16]
    plain = encode_pairs(pairs, src, tgt)
    cut = encode_pairs(pairs, src, tgt, 0.3, random.Random(5))
    assert cut != plain and cut == encode_pairs(pairs, src, tgt, 0.3, random.Random(5))
    assert [tgt.decode(t) for _, t in cut] == [tgt.decode(t) for _, t in plain]  # same text, other pieces


def test_reverse_swaps_the_columns_for_training_and_evaluation(pair_file: Path, tmp_path: Path) -> None:
    train_pairs, valid, _ = load_data(_cfg(pair_file, tmp_path / "r", reverse=True))
    assert train_pairs[0].src == FRENCH[0] and train_pairs[0].tgt == ENGLISH[0]
    assert split_pairs_of(str(pair_file), "valid", reverse=True) == valid
    train(_cfg(pair_file, tmp_path / "r", reverse=True, epochs=1))
    assert trained_reversed(read_checkpoint(tmp_path / "r" / "checkpoint.pt"))


def test_a_bad_tokeniser_file_is_a_data_error(pair_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"kind": "bpe", "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "a"], "merges": [["a", "a"]]}'
    )
    with pytest.raises(DataError, match="bad.json: not a tokeniser file: BPE merges make pieces outside"):
        train(_cfg(pair_file, tmp_path / "x", src_tokenizer=str(bad)))
    with pytest.raises(DataError, match="tokeniser file not found"):
        train(_cfg(pair_file, tmp_path / "x", tgt_tokenizer=str(tmp_path / "missing.json")))
