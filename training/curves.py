"""Training curves: the training loss, the validation loss and validation BLEU against the step,
as a PNG. `s2s train` writes OUT/curves.png at the end; `s2s plot-curves` draws any checkpoint's.

The points come from the history every checkpoint carries (training.train):
- "train_loss": [[step, mean training loss per target token since the previous point], ...]
  (rank 0's batches under torchrun; label smoothing included when on);
- "valid_loss", "valid_steps", "valid_bleu": one entry per validation (BLEU None when off).
Checkpoints written before the curves existed have "valid_loss" only: it is drawn against the
validation's number instead of the step.
"""

from __future__ import annotations

from pathlib import Path

from training.plot import pyplot, save_figure


class CurveError(ValueError):
    """The history has nothing to draw."""


def _validation_x(history: dict) -> tuple[list[float], str]:
    losses, steps = history.get("valid_loss", []), history.get("valid_steps", [])
    if len(steps) == len(losses):
        return list(steps), "step"
    return list(range(1, len(losses) + 1)), "validation"


def plot_curves(history: dict, path: str | Path, title: str = "") -> Path:
    """Write the PNG of `history` (a checkpoint's ["train"]["history"]) to `path`; returns it."""
    plt = pyplot()
    train = history.get("train_loss", [])
    valid = history.get("valid_loss", [])
    if not train and not valid:
        raise CurveError("the training history has no losses to draw (no step was trained?)")
    x_valid, x_label = _validation_x(history)
    bleu = [(x, b) for x, b in zip(x_valid, history.get("valid_bleu", []), strict=False) if b is not None]
    if x_label != "step":
        bleu = []  # an old history: BLEU cannot be placed on the loss axis
    fig, axes = plt.subplots(1, 2 if bleu else 1, figsize=(10 if bleu else 6, 4), dpi=110, squeeze=False)
    ax = axes[0][0]
    if train and x_label == "step":
        ax.plot([s for s, _ in train], [v for _, v in train], label="training loss", linewidth=1)
    if valid:
        ax.plot(x_valid, valid, "o-", label="validation loss", markersize=3)
    ax.set_xlabel(x_label)
    ax.set_ylabel("loss per target token")
    ax.set_yscale("log" if min([*valid, *(v for _, v in train)]) > 0 else "linear")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if bleu:
        ax = axes[0][1]
        ax.plot([x for x, _ in bleu], [b for _, b in bleu], "o-", color="tab:green", markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel("validation BLEU (greedy, sample)")
        ax.set_ylim(0, min(102.0, 1.15 * max(b for _, b in bleu) + 1.0))  # BLEU lives in [0, 100]
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
