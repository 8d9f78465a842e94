"""training/ema.py and `s2s train --ema-decay`: the average's arithmetic, what checkpoints hold,
and that resume continues the raw weights and the average exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import ConfigError, TrainConfig
from training.ema import WeightAverage
from training.model import load_checkpoint, read_checkpoint
from training.train import train

TINY = dict(data="dates", dates_train=512, dates_valid=64, emb_dim=16, hidden=32, batch_size=32,
            lr=5e-3, dropout=0.1, threads=1, progress=False, patience=10)  # fmt: skip


def test_average_follows_the_weights_with_the_warm_up_decay() -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema = WeightAverage(layer, decay=0.9)
    expected = torch.ones(1, 2)
    for value, n in ((3.0, 1), (5.0, 2), (7.0, 3)):
        with torch.no_grad():
            layer.weight.fill_(value)
        ema.update()
        decay = min(0.9, (1 + n) / (10 + n))  # 2/11, 3/12, 4/13: the warm-up is still on
        expected = decay * expected + (1 - decay) * value
        torch.testing.assert_close(ema.shadow[0], expected)
    raw = layer.weight.detach().clone()
    with ema.swapped():
        torch.testing.assert_close(layer.weight.detach(), expected)
        assert torch.equal(ema.raw_state_dict()["weight"], raw)
    assert torch.equal(layer.weight.detach(), raw)  # restored bit for bit
    with pytest.raises(RuntimeError, match="swapped"):
        ema.raw_state_dict()


def test_checkpoints_hold_the_average_and_resume_continues_exactly(tmp_path: Path) -> None:
    cfg = dict(TINY, ema_decay=0.95)
    train(TrainConfig(**cfg, out=str(tmp_path / "a"), epochs=2))
    train(TrainConfig(**cfg, out=str(tmp_path / "b"), epochs=1))
    train(TrainConfig(**cfg, out=str(tmp_path / "b"), epochs=2, resume=str(tmp_path / "b" / "last.pt")))
    a, b = read_checkpoint(tmp_path / "a" / "last.pt"), read_checkpoint(tmp_path / "b" / "last.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"] == 2 * 16
    for name, average in a["model"].items():
        # "model" is the average, not the trained weights; both continue exactly across a resume.
        assert torch.equal(average, a["ema"]["shadow"][name])
        assert not torch.equal(average, a["raw_model"][name]), name
        assert torch.equal(average, b["model"][name])
        assert torch.equal(a["raw_model"][name], b["raw_model"][name])
    model, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt")  # later steps read the average as usual
    assert model.cfg.hidden == 32


def test_decay_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(**TINY, out="x", ema_decay=1.0)
