"""The training loop: Adam, teacher forcing, clipping, a learning-rate schedule, early stopping,
a checkpoint each epoch, resume, and DistributedDataParallel under torchrun.

    s2s train                                  # the built-in dates model -> artifacts/dates/
    torchrun --nproc-per-node 2 -m training.train --data ../shared/data/eng-fra.tsv ...

Checkpoints (training.model.save_checkpoint): OUT/last.pt after every epoch (what --resume reads)
and OUT/checkpoint.pt, the one with the best validation loss (what later steps use). At the end,
OUT/curves.png: the loss and BLEU curves of the history the checkpoints carry (training.curves).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from s2s.tokenizer import Tokenizer
from training import dates, progress
from training.config import TrainConfig
from training.curves import plot_curves
from training.data import (
    DataError,
    Pair,
    batches,
    build_tokenizer,
    encode_pairs,
    filter_length,
    load_tokenizer,
    read_pairs,
    reversed_pairs,
    split_pairs,
)
from training.distributed import Distributed
from training.ema import WeightAverage
from training.loss import TrainingLoss
from training.model import ModelConfig, Seq2Seq, read_checkpoint, save_checkpoint
from training.validation import bleu_sample, validation_bleu, validation_loss

log = logging.getLogger(__name__)
TRAIN_LOSS_EVERY = 50  # steps per point of the training-loss curve (and at every validation)


def load_data(cfg: TrainConfig) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """(train, valid, test) pairs of the configured task."""
    if cfg.data == "dates":
        train, valid = dates.train_valid_pairs(cfg.dates_train, cfg.dates_valid, cfg.seed)
        test = dates.held_out_pairs()
        return (
            [Pair(s, t, -1) for s, t in train],
            [Pair(s, t, -1) for s, t in valid],
            [Pair(s, t, -1) for s, t in test],
        )
    pairs = read_pairs(cfg.data)
    splits = split_pairs(reversed_pairs(pairs) if cfg.reverse else pairs)
    if not splits.train or not splits.valid:
        raise DataError(f"{cfg.data}: too few lines for a training and a validation split")
    return splits.train, splits.valid, splits.test


def build_tokenizers(cfg: TrainConfig, train: list[Pair]) -> tuple[Tokenizer, Tokenizer]:
    """Each side's tokeniser file (`s2s subword train`) where one is given, else a vocabulary
    counted from the training split."""
    max_size = cfg.max_vocab or None
    sides = []
    for file, kind, texts in (
        (cfg.src_tokenizer, cfg.src_kind, [p.src for p in train]),
        (cfg.tgt_tokenizer, cfg.tgt_kind, [p.tgt for p in train]),
    ):
        if file:
            sides.append(load_tokenizer(file))
        else:
            sides.append(build_tokenizer(texts, kind, cfg.min_freq, max_size, cfg.data, cfg.lowercase))
    return sides[0], sides[1]


def learning_rate(cfg: TrainConfig, step: int, plateau_factor: float) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.lr_schedule == "cosine":
        return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.max_steps) / cfg.max_steps))
    return cfg.lr * warm * plateau_factor


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def train(cfg: TrainConfig) -> dict:
    """Train as configured; returns the training summary stored in the checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ddp = Distributed(device)
    try:
        return _train(cfg, device, ddp)
    finally:
        ddp.close()


def _train(cfg: TrainConfig, device: torch.device, ddp: Distributed) -> dict:
    out = Path(cfg.out)
    train_pairs, valid_pairs, _ = load_data(cfg)
    resumed = read_checkpoint(cfg.resume) if cfg.resume else None
    if resumed:
        src_tok = Tokenizer.from_dict(resumed["src_tokenizer"])
        tgt_tok = Tokenizer.from_dict(resumed["tgt_tokenizer"])
    else:
        src_tok, tgt_tok = build_tokenizers(cfg, train_pairs)
    train_pairs = filter_length(train_pairs, src_tok, tgt_tok, cfg.max_len)
    if not train_pairs:
        raise DataError(f"{cfg.data}: no training pair has at most max_len={cfg.max_len} pieces per side")
    train_ex = encode_pairs(train_pairs, src_tok, tgt_tok)
    valid_ex = encode_pairs(valid_pairs, src_tok, tgt_tok)
    valid_batches = batches(valid_ex, 256)
    # BLEU only draws the curves, so only rank 0, which draws them, decodes.
    sample = bleu_sample(valid_ex, valid_pairs, cfg.valid_bleu) if ddp.rank == 0 else None

    torch.manual_seed(cfg.seed)
    if resumed:  # the checkpoint's own architecture, whatever the flags say
        model_cfg = ModelConfig.from_dict(resumed["config"])
    else:
        model_cfg = ModelConfig(len(src_tok), len(tgt_tok), **cfg.model_fields())
    model = Seq2Seq(model_cfg).to(device)
    # The fused kernel makes one pass over each parameter instead of a dozen: 22 -> 5 ms a step on
    # one CPU thread at the eng-fra reference size, the same update up to float rounding.
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type in ("cpu", "cuda"))
    history: dict = {
        "epochs": 0,
        "steps": 0,
        "seconds": 0.0,
        "best_valid_loss": float("inf"),
        "valid_loss": [],
        "valid_steps": [],  # the step of each validation, for the curves
        "valid_bleu": [],  # greedy BLEU on the sample at each validation (None: off)
        "train_loss": [],  # [step, mean loss per target token since the previous point]
        "plateau_factor": 1.0,
        "bad_epochs": 0,
        "last_improved": False,
    }
    if resumed:
        # With an average on, "model" holds the average and "raw_model" what the optimizer trains.
        model.load_state_dict(resumed.get("raw_model", resumed["model"]))
        optimizer.load_state_dict(resumed["optimizer"])
        history.update(resumed["train"]["history"])
        torch.set_rng_state(resumed["rng"])
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None
    if ema is not None and resumed and "ema" in resumed:
        ema.load_state_dict(resumed["ema"])
    loss_fn = TrainingLoss(model, cfg.label_smoothing, cfg.teacher_forcing)
    net = DDP(loss_fn) if ddp.active else loss_fn
    params = sum(p.numel() for p in model.parameters())
    if ddp.rank == 0:
        log.info(
            "model %s: %d parameters; vocab %d -> %d; %d training pairs; device %s; %d process(es)",
            model_cfg,
            params,
            len(src_tok),
            len(tgt_tok),
            len(train_ex),
            device,
            ddp.world,
        )

    def checkpoint(path: Path) -> None:
        if ema is None:
            return save(path)
        with ema.swapped():  # "model" is the average; the raw weights and the average's state too
            save(path, raw_model=ema.raw_state_dict(), ema=ema.state_dict())

    def save(path: Path, **extra) -> None:
        summary = {
            "data": cfg.data,
            "config": dataclasses.asdict(cfg),
            "history": dict(history),
            "steps": history["steps"],
            "epoch": history["epochs"],
            "parameters": params,
            "metrics": {"valid_loss": history["best_valid_loss"]},
        }
        save_checkpoint(
            path,
            model,
            name=cfg.name or out.name,
            src_tokenizer=src_tok.to_dict(),
            tgt_tokenizer=tgt_tok.to_dict(),
            train=summary,
            optimizer=optimizer.state_dict(),
            epoch=history["epochs"],
            rng=torch.get_rng_state(),
            **extra,
        )

    def validate() -> bool:
        """Validation loss (and BLEU); saves checkpoint.pt when the loss improved, which it returns.
        Validating twice at one step would measure the same weights: the second call reuses."""
        if history["valid_steps"] and history["valid_steps"][-1] == history["steps"]:
            return history["last_improved"]
        record_train_loss()
        with ema.swapped() if ema is not None else contextlib.nullcontext():
            loss = validation_loss(model, valid_batches, device)
            bleu = validation_bleu(model, sample, tgt_tok) if sample else None
        history["valid_loss"].append(round(loss, 5))
        history["valid_steps"].append(history["steps"])
        history["valid_bleu"].append(None if bleu is None else round(bleu, 2))
        improved = loss < history["best_valid_loss"]
        history["last_improved"] = improved
        if improved:
            history["best_valid_loss"] = loss
            if ddp.rank == 0:
                checkpoint(out / "checkpoint.pt")
        if ddp.rank == 0:
            shown = f", BLEU {bleu:.2f}" if bleu is not None else ""
            log.info("step %d: validation loss %.4f%s%s", history["steps"], loss, shown,
                     " (best)" if improved else "")  # fmt: skip
        return improved

    # Training loss since the last curve point, summed on the device: no sync a step.
    loss_sum, loss_tokens = torch.zeros((), device=device), 0

    def record_train_loss() -> None:
        nonlocal loss_sum, loss_tokens
        if loss_tokens:  # .item() waits for the device: once a point, not once a step
            history["train_loss"].append([history["steps"], round(loss_sum.item() / loss_tokens, 5)])
        loss_sum, loss_tokens = torch.zeros((), device=device), 0

    def out_of_budget() -> bool:
        """--time-budget or --max-steps reached, on any rank (a collective: every rank calls it)."""
        over_time = bool(cfg.time_budget) and time.monotonic() - start >= cfg.time_budget
        over_steps = bool(cfg.max_steps) and history["steps"] >= cfg.max_steps
        return ddp.any(over_time or over_steps)

    start = time.monotonic() - history["seconds"]
    stop = False
    bars = cfg.progress and ddp.rank == 0
    model.train()
    with progress.logs_through_bars(bars):
        while not stop and history["epochs"] < cfg.epochs:
            epoch = history["epochs"]
            if cfg.bpe_dropout:  # a fresh cut of the training text every epoch, from the seed
                rng = random.Random(cfg.seed * 1000 + epoch)
                train_ex = encode_pairs(train_pairs, src_tok, tgt_tok, cfg.bpe_dropout, rng)
            epoch_batches = batches(
                train_ex,
                cfg.batch_size,
                shuffle=True,
                seed=cfg.seed * 1000 + epoch,
                rank=ddp.rank,
                world_size=ddp.world,
            )
            bar = progress.bar(bars, len(epoch_batches), f"epoch {epoch + 1}", "batch")
            tokens, tick = 0, time.monotonic()
            for batch in epoch_batches:
                b = batch.to(device)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(cfg, history["steps"], history["plateau_factor"])
                loss = net(b.src, b.src_lengths, b.tgt_in, b.tgt_out) / b.num_tokens
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                optimizer.step()
                if ema is not None:
                    ema.update()
                history["steps"] += 1
                tokens += b.num_tokens
                loss_sum += loss.detach() * b.num_tokens
                loss_tokens += b.num_tokens
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss.item():.3f}",
                        tok_s=f"{tokens / (time.monotonic() - tick):.0f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.1e}",
                    )
                if history["steps"] % TRAIN_LOSS_EVERY == 0:
                    record_train_loss()
                if cfg.eval_every and history["steps"] % cfg.eval_every == 0:
                    validate()
                if out_of_budget():
                    stop = True
                    break
            if bar is not None:
                bar.close()
            history["epochs"] = epoch + 1
            history["seconds"] = time.monotonic() - start
            if validate():
                history["bad_epochs"] = 0
            else:
                history["bad_epochs"] += 1
                history["plateau_factor"] *= cfg.lr_decay if cfg.lr_schedule == "plateau" else 1.0
                if history["bad_epochs"] >= cfg.patience:
                    if ddp.rank == 0:
                        log.info("early stop: no better validation loss for %d epochs", cfg.patience)
                    stop = True
            if ddp.rank == 0:
                checkpoint(out / "last.pt")
            # The budget may run out during the validation and the saves: stop here, or the next
            # epoch would train one step and validate again (two validations a step apart).
            stop = out_of_budget() or stop
    if ddp.rank == 0:
        log.info(
            "trained %d steps, %d epochs in %.0f s; best validation loss %.4f -> %s",
            history["steps"],
            history["epochs"],
            history["seconds"],
            history["best_valid_loss"],
            out / "checkpoint.pt",
        )
        if history["valid_loss"]:
            path = plot_curves(history, out / "curves.png", f"{cfg.name or out.name}: {cfg.data}")
            log.info("training curves -> %s", path)
    return history


def main(argv: list[str] | None = None) -> int:
    """`python -m training.train ...` (what torchrun runs): `s2s train`, with its exit codes."""
    from training.cli import build_train_parser, train_command

    args = build_train_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return train_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
