"""Small real bundles for tests (export's own, the scheduler's, the server's): train, then export.

    from export.testing import export_tiny_bundle
    bundle_dir = export_tiny_bundle(tmp_path, cell="gru", score="additive", train_steps=150)

The model is trained for a few seconds on the built-in dates task (char tokenisers), so its
outputs end with <eos> and are not near-ties, and it is exported by the real exporter, validation
included. Deterministic for a given seed and thread count.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from export.exporter import ExportConfig, export_model
from s2s.tokenizer import PAD_ID, Tokenizer

TRAIN_EXAMPLES = 3000  # drawn once; enough variety for a few hundred steps
BATCH_SIZE = 64
LEARNING_RATE = 0.01  # high on purpose: a few hundred steps must get past uniform outputs


@functools.cache
def dates_data(seed: int = 0, n: int = TRAIN_EXAMPLES) -> list[tuple[str, str]]:
    from training.dates import train_valid_pairs

    train, _ = train_valid_pairs(n, 1, seed)
    return train


def tiny_model(
    *,
    cell: str = "lstm",
    score: str = "general",
    bidirectional: bool = True,
    layers: int = 2,
    hidden: int = 32,
    emb_dim: int = 16,
    attn_dim: int = 0,
    train_steps: int = 200,
    seed: int = 0,
    name: str = "tiny",
):
    """(model in eval mode, checkpoint dict) of a small model trained train_steps on dates."""
    from training.data import collate
    from training.model import ModelConfig, Seq2Seq

    pairs = dates_data(seed)
    src_tok = Tokenizer.build([s for s, _ in pairs], "char")
    tgt_tok = Tokenizer.build([t for _, t in pairs], "char")
    examples = [(src_tok.encode(s), tgt_tok.encode(t)) for s, t in pairs]
    torch.manual_seed(seed)
    cfg = ModelConfig(
        src_vocab_size=len(src_tok),
        tgt_vocab_size=len(tgt_tok),
        cell=cell,
        score=score,
        emb_dim=emb_dim,
        hidden=hidden,
        layers=layers,
        bidirectional=bidirectional,
        dropout=0.0,
        attn_dim=attn_dim,
    )
    model = Seq2Seq(cfg)
    threads = torch.get_num_threads()
    # Tiny matrices: one thread is 5x faster than two on a shared 2-core machine (measured).
    torch.set_num_threads(1)
    try:
        loss = _train(model, examples, train_steps, seed, collate)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    checkpoint = {
        "format": "s2s-checkpoint",
        "format_version": 1,
        "name": name,
        "src_tokenizer": src_tok.to_dict(),
        "tgt_tokenizer": tgt_tok.to_dict(),
        "train": {
            "data": {"task": "dates", "examples": len(examples), "seed": seed},
            "steps": train_steps,
            "metrics": {"train_loss": loss},
        },
    }
    return model, checkpoint


def _train(model, examples, steps: int, seed: int, collate) -> float | None:
    """Teacher-forced NLL with Adam; returns the last batch's loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    rng = random.Random(seed)
    loss = None
    model.train()
    for _ in range(steps):
        batch = collate(rng.sample(examples, BATCH_SIZE))
        log_probs = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, U, V)
        step_loss = F.nll_loss(log_probs.transpose(1, 2), batch.tgt_out, ignore_index=PAD_ID)
        optimizer.zero_grad()
        step_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss = step_loss.item()
    return loss


def export_tiny_bundle(
    out_dir: str | Path,
    *,
    version: str = "1",
    quantize: str | None = None,
    fp16: bool = False,
    optimization_level: str = "extended",
    force: bool = False,
    **model_kwargs,
) -> Path:
    """Train a tiny model (tiny_model's keyword arguments) and export it to
    out_dir/<name>/<version>/; returns that bundle directory. About 5-10 s on 2 shared cores."""
    model, checkpoint = tiny_model(**model_kwargs)
    config = ExportConfig(
        out_dir=Path(out_dir),
        version=version,
        quantize=quantize,
        fp16=fp16,
        optimization_level=optimization_level,
        force=force,
        max_length=32,  # dates outputs are 10 characters; a cap keeps untrained models quick
    )
    return export_model(model, checkpoint, config)
