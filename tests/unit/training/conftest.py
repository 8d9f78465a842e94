"""Shared fixtures for the training tests: tiny models and the real data files when present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.model import ModelConfig, Seq2Seq

ROOT = Path(__file__).resolve().parents[3]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def eng_fra() -> Path:
    path = SHARED_DATA / "eng-fra.tsv"
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (the shared data directory sits beside the repo)")
    return path


def _tiny_model(
    cell: str = "lstm", score: str = "general", bidirectional: bool = True, layers: int = 2, seed: int = 0
) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        src_vocab_size=13,
        tgt_vocab_size=11,
        cell=cell,
        score=score,
        emb_dim=6,
        hidden=8,
        layers=layers,
        bidirectional=bidirectional,
        dropout=0.0,
        attn_dim=5,
    )
    return Seq2Seq(cfg).eval()


@pytest.fixture
def tiny_model():
    """Factory: tiny_model(cell, score, bidirectional, layers, seed) -> an eval-mode Seq2Seq."""
    return _tiny_model
