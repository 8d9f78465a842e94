"""Attention heatmaps for `s2s translate --attention out.png` (client side only).

matplotlib is imported when a plot is made: the server never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.client import Hypothesis


def save_attention_png(hypothesis: Hypothesis, path: Path) -> None:
    """Heatmap of `hypothesis.attention` (output rows × source columns) with token labels."""
    if hypothesis.attention is None:
        raise ValueError("the hypothesis has no attention (ask the server with attention=True)")
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    rows, cols = hypothesis.attention.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * cols + 2), max(3.0, 0.35 * rows + 1.5)))
    image = ax.imshow(hypothesis.attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), hypothesis.source_tokens, rotation=90)
    ax.set_yticks(range(rows), hypothesis.target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
