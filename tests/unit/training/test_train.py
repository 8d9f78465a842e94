"""Tiny real training runs: the loss falls, a seed fixes the result, resume continues exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from training.config import TrainConfig
from training.data import DataError
from training.loss import sequence_loss
from training.model import load_checkpoint, read_checkpoint
from training.train import train

TINY = dict(
    data="dates",
    dates_train=1024,
    dates_valid=128,
    emb_dim=16,
    hidden=32,
    batch_size=32,
    lr=5e-3,
    dropout=0.1,
    threads=1,
    progress=False,
    patience=10,
)


def _cfg(tmp_path: Path, name: str, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(tmp_path / name), **overrides})


def test_validation_loss_falls_and_checkpoint_loads(tmp_path: Path) -> None:
    history = train(_cfg(tmp_path, "run", epochs=3))
    losses = history["valid_loss"]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    model, ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["train"]["steps"] == 3 * 32 and ckpt["train"]["data"] == "dates"
    # history["valid_loss"] holds the losses rounded to 5 decimals
    assert ckpt["train"]["metrics"]["valid_loss"] == pytest.approx(min(losses), abs=1e-5)
    assert model.cfg.hidden == 32 and ckpt["src_tokenizer"]["kind"] == "char"


def test_same_seed_same_weights_and_resume_continues_exactly(tmp_path: Path) -> None:
    straight = train(_cfg(tmp_path, "a", epochs=2))
    train(_cfg(tmp_path, "b", epochs=1))
    resumed = train(_cfg(tmp_path, "b", epochs=2, resume=str(tmp_path / "b" / "last.pt")))
    assert resumed["steps"] == straight["steps"] == 64
    a = read_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "b" / "last.pt")["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    train(_cfg(tmp_path, "c", epochs=2))
    c = read_checkpoint(tmp_path / "c" / "last.pt")["model"]
    assert all(torch.equal(a[name], c[name]) for name in a)


def test_max_steps_and_teacher_forcing_below_one(tmp_path: Path) -> None:
    history = train(_cfg(tmp_path, "tf", max_steps=5, teacher_forcing=0.5, cell="gru", score="additive"))
    assert history["steps"] == 5 and history["epochs"] == 1


def test_label_smoothing_adds_the_uniform_term() -> None:
    log_probs = torch.log_softmax(torch.tensor([[[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]), dim=-1)  # (1, 2, 3)
    target = torch.tensor([[2, 0]])  # the second position is padding
    nll = -log_probs[0, 0, 2]
    assert sequence_loss(log_probs, target).item() == pytest.approx(nll.item())
    smoothed = 0.9 * nll - 0.1 * log_probs[0, 0].mean()
    assert sequence_loss(log_probs, target, 0.1).item() == pytest.approx(smoothed.item())


def test_bad_pair_file_is_reported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\nno tab\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2"):
        train(dataclasses.replace(_cfg(tmp_path, "bad"), data=str(path), src_kind="word", tgt_kind="word"))
