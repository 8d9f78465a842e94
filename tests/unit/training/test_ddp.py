"""DistributedDataParallel under torchrun: two CPU processes on the gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from training.model import load_checkpoint

ROOT = Path(__file__).resolve().parents[3]


def test_two_process_gloo_run_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "training.train",
        "--out",
        str(out),
        "--dates-train",
        "1024",
        "--dates-valid",
        "128",
        "--emb-dim",
        "16",
        "--hidden",
        "32",
        "--batch-size",
        "32",
        "--lr",
        "0.005",
        "--epochs",
        "3",
        "--threads",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stderr
    model, ckpt = load_checkpoint(out / "checkpoint.pt")
    losses = ckpt["train"]["history"]["valid_loss"]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    # 1024 pairs in batches of 32 split over 2 ranks: 16 optimizer steps per epoch.
    assert ckpt["train"]["steps"] == 3 * 16
    with torch.no_grad():
        log_probs = model(torch.tensor([[4, 5, 6]]), torch.tensor([3]), torch.tensor([[1, 4]]))
    assert log_probs.shape == (1, 2, model.cfg.tgt_vocab_size)
