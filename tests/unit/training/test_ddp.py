"""DistributedDataParallel under torchrun on the gloo backend: two CPU processes on one node, and
two nodes (two torchrun launches) on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from training.model import load_checkpoint, read_checkpoint

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_as_one_job(tmp_path: Path) -> None:
    """Two torchrun launches, as on two machines: node ranks 0 and 1, one process each, meeting at
    node 0's rendezvous on 127.0.0.1. Each node gets its own output directory, as on its own disk."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    nodes, logs = [], []
    for node_rank in (0, 1):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node_rank),
            "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
            "-m", "training.train", "--out", str(tmp_path / f"node{node_rank}"), "--dates-train", "512",
            "--dates-valid", "64", "--emb-dim", "8", "--hidden", "16", "--batch-size", "32",
            "--epochs", "2", "--threads", "1", "--no-progress", "--device", "cpu", "--valid-bleu", "0",
        ]  # fmt: skip
        logs.append((tmp_path / f"node{node_rank}.log").open("w"))  # files: no launch waits on a reader
        nodes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    try:
        for node in nodes:
            node.wait(timeout=240)
    finally:
        for node, log in zip(nodes, logs, strict=True):
            if node.poll() is None:
                node.kill()
                node.wait()
            log.close()
    outputs = [(tmp_path / f"node{rank}.log").read_text() for rank in (0, 1)]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    assert "2 process(es)" in outputs[0]
    ckpt = read_checkpoint(tmp_path / "node0" / "checkpoint.pt")
    # 512 pairs in batches of 32 dealt to 2 ranks, one on each node: 8 steps an epoch, not 16.
    assert ckpt["train"]["steps"] == 2 * 8
    assert ckpt["train"]["history"]["valid_steps"] == [8, 16]
    assert not (tmp_path / "node1").exists(), "only global rank 0 (on node 0) writes checkpoints"
