"""Attention heatmaps and training curves are real PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.curves import CurveError, plot_curves
from training.plot import axis_labels, plot_attention


def test_writes_a_png(tmp_path: Path) -> None:
    attention = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]], dtype=np.float32)  # (out 2, src 3)
    path = plot_attention(attention, ["1", " ", "J"], ["▁2007", "-"], tmp_path / "a" / "attn.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shape_mismatch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2x3"):
        plot_attention(np.zeros((2, 3)), ["a", "b"], ["x", "y"], tmp_path / "x.png")


def test_axis_labels_show_spaces_and_drop_word_marks() -> None:
    assert axis_labels([" ", "▁chat", "!"]) == ["␣", "chat", "!"]


def test_curves_of_a_full_history_and_of_an_old_one(tmp_path: Path) -> None:
    history = {
        "train_loss": [[50, 2.0], [100, 1.2]],
        "valid_loss": [1.5, 1.0],
        "valid_steps": [60, 100],
        "valid_bleu": [10.0, 20.5],
    }
    assert plot_curves(history, tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    old = {"valid_loss": [1.5, 1.0, 0.0]}  # before the curves: no steps, no BLEU; a loss of 0
    assert plot_curves(old, tmp_path / "old.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CurveError, match="no losses"):
        plot_curves({"valid_loss": [], "train_loss": []}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_korean_tokens_are_drawn_with_an_installed_cjk_font(tmp_path: Path) -> None:
    from training.plot import font_family

    if len(font_family()) == 1:
        pytest.skip("no CJK font installed (Debian: fonts-nanum), so Hangul would draw as boxes")
    # A glyph missing from every font is a matplotlib warning, which the test settings make an error.
    path = plot_attention(np.eye(3), ["▁안녕", "하세요", "."], ["▁Hello", "▁there", "."], tmp_path / "ko.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
