"""Attention heatmaps: the lecture's picture, source tokens across and output tokens down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2s.tokenizer import SPACE_MARK

SPACE_SHOWN = "␣"  # a visible space for character-level axes
# Tried glyph by glyph after DejaVu Sans, which has no Hangul or CJK, where installed (Debian:
# fonts-nanum, fonts-noto-cjk): Korean tokens on an axis need one of them.
FALLBACK_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC")


def axis_labels(pieces: Sequence[str]) -> list[str]:
    """Token strings made readable on an axis: spaces shown, word pieces without their mark."""
    return [SPACE_SHOWN if p == " " else p.replace(SPACE_MARK, "") or SPACE_SHOWN for p in pieces]


def pyplot():
    """matplotlib.pyplot drawing to files only (the Agg backend): never needs a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def font_family() -> list[str]:
    """DejaVu Sans, then the installed fallback fonts, for rcParams["font.family"]."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in installed)]


def save_figure(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG to `path` (its directory made as needed), free it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)
    return path


def plot_attention(
    attention: np.ndarray,
    src_pieces: Sequence[str],
    out_pieces: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Write a PNG heatmap of `attention` (out_len, src_len) to `path`; returns the path."""
    plt = pyplot()
    rows, cols = attention.shape
    if (rows, cols) != (len(out_pieces), len(src_pieces)):
        raise ValueError(
            f"attention is {rows}x{cols} but there are {len(out_pieces)} output "
            f"and {len(src_pieces)} source tokens"
        )
    width, height = max(4.0, 0.32 * cols + 1.8), max(3.0, 0.32 * rows + 1.4)
    with plt.rc_context({"font.family": font_family()}):
        return _draw(plt, attention, src_pieces, out_pieces, path, title, (width, height))


def _draw(plt, attention, src_pieces, out_pieces, path, title, size) -> Path:
    """The heatmap itself, drawn with the fonts in effect."""
    rows, cols = attention.shape
    fig, ax = plt.subplots(figsize=size, dpi=120)
    image = ax.imshow(attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    src_labels = axis_labels(src_pieces)
    upright = max(len(label) for label in src_labels) <= 2  # characters read best unrotated
    ax.set_xticks(range(cols), src_labels, rotation=0 if upright else 60, ha="center" if upright else "left")
    ax.set_yticks(range(rows), axis_labels(out_pieces))
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return save_figure(fig, path)
