"""Training-step time of the per-step reference loss against the packed one, side by side.

    python -m training.step_timing --data ../shared/data/eng-fra.tsv --threads 2 --steps 30

Both run the eng-fra reference size (docs/training.md) from the same initial weights on the same
batches, alternating batch by batch (which of the two goes first alternates too), so a busy or
drifting machine slows both alike. A step is the loss, backward, gradient clipping and the
optimizer: `Seq2Seq.forward` + `sequence_loss` + Adam as training ran before the packed loss, and
`TrainingLoss` + fused Adam as `training.train` runs now. Prints wall and CPU time per step.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from training.config import TrainConfig
from training.data import batches, encode_pairs, filter_length
from training.loss import TrainingLoss, sequence_loss
from training.model import ModelConfig, Seq2Seq
from training.train import build_tokenizers, load_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.step_timing", description="Training-step time.")
    parser.add_argument("--data", default="../shared/data/eng-fra.tsv", help="pair file")
    parser.add_argument("--score", default="general", choices=["dot", "general", "concat", "additive"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per path (after 2 warm-up steps)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        data=args.data,
        src_kind="word",
        tgt_kind="word",
        emb_dim=128,
        hidden=256,
        layers=2,
        dropout=0.3,
        score=args.score,
        label_smoothing=0.1,
    )
    train_pairs, _, _ = load_data(cfg)
    src_tok, tgt_tok = build_tokenizers(cfg, train_pairs)
    examples = encode_pairs(filter_length(train_pairs, src_tok, tgt_tok, cfg.max_len), src_tok, tgt_tok)
    data = batches(examples, cfg.batch_size, shuffle=True, seed=cfg.seed * 1000)[: args.steps + 2]
    torch.manual_seed(cfg.seed)
    per_step = Seq2Seq(ModelConfig(len(src_tok), len(tgt_tok), **cfg.model_fields())).train()
    packed = copy.deepcopy(per_step)
    smoothing = cfg.label_smoothing

    def reference_loss(b):
        return sequence_loss(per_step(b.src, b.src_lengths, b.tgt_in), b.tgt_out, smoothing)

    packed_loss = TrainingLoss(packed, smoothing)
    paths = {
        "per-step (before)": (per_step, reference_loss, torch.optim.Adam(per_step.parameters(), lr=cfg.lr)),
        "packed (now)": (
            packed,
            lambda b: packed_loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out),
            torch.optim.Adam(packed.parameters(), lr=cfg.lr, fused=True),
        ),
    }
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for i, b in enumerate(data):
        for name in list(paths)[:: 1 if i % 2 else -1]:
            model, loss_fn, optimizer = paths[name]
            tick, cpu_tick = time.perf_counter(), time.process_time()
            loss = loss_fn(b) / b.num_tokens
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            if i >= 2:  # warm-up
                wall[name].append(time.perf_counter() - tick)
                cpu[name].append(time.process_time() - cpu_tick)
    print(f"{args.score}, {args.threads} thread(s), {args.steps} steps of {cfg.batch_size} sentences")
    for name in paths:
        w = sorted(wall[name])
        print(
            f"  {name:18s} wall {1e3 * sum(w) / len(w):6.1f} ms/step (median {1e3 * w[len(w) // 2]:6.1f}), "
            f"CPU {1e3 * sum(cpu[name]) / len(cpu[name]):6.1f} ms/step"
        )
    before, now = (sum(wall[name]) for name in paths)
    print(f"  speed-up (wall): {before / now:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
