"""Helpers shared by the e2e tests (imported as `e2e_support`; fixtures live in conftest.py).

Two bundles are served together: "dates-tiny" (the default; ends its outputs with <eos>) and
"endless" (the same weights with <eos> made impossible, so every request runs to its max_length:
what the cancellation, deadline and drain tests need to catch a request in flight).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.sessions import RunnerConfig
from s2s.tokenizer import EOS_ID, Tokenizer
from service.config import ServerConfig
from service.scheduler import SchedulerConfig

DEFAULT_MODEL = "dates-tiny"
ENDLESS_MODEL = "endless"


@dataclass(frozen=True)
class E2EModels:
    model: Any  # the PyTorch Seq2Seq behind DEFAULT_MODEL, for the reference decoder
    bundle: Path  # DEFAULT_MODEL/1
    endless_bundle: Path  # ENDLESS_MODEL/1
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    checkpoint: dict  # DEFAULT_MODEL's checkpoint dict, to export it again (other variants)


def build_models(out: Path) -> E2EModels:
    """Train a tiny dates model for a few seconds and export it twice (see the module docstring)."""
    pytest.importorskip("torch", reason="the e2e bundles are trained and exported here; needs .[train]")
    import torch

    from export.exporter import ExportConfig, export_model
    from export.testing import tiny_model

    model, checkpoint = tiny_model(train_steps=200, name=DEFAULT_MODEL)
    bundle = export_model(model, checkpoint, ExportConfig(out_dir=out, max_length=32))
    endless = copy.deepcopy(model)
    with torch.no_grad():
        endless.decoder.out.bias[EOS_ID] = -1e4  # never ends: runs to max_length
    endless_bundle = export_model(
        endless, {**checkpoint, "name": ENDLESS_MODEL}, ExportConfig(out_dir=out, max_length=512)
    )
    return E2EModels(
        model=model,
        bundle=bundle,
        endless_bundle=endless_bundle,
        src_tokenizer=Tokenizer.from_dict(checkpoint["src_tokenizer"]),
        tgt_tokenizer=Tokenizer.from_dict(checkpoint["tgt_tokenizer"]),
        checkpoint=checkpoint,
    )


def e2e_config(models: E2EModels, **overrides: Any) -> ServerConfig:
    """Localhost, free port, no metrics exporter, both bundles, one ORT thread (2 shared cores)."""
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        metrics_port=None,
        bundles=(models.bundle, models.endless_bundle),
        runner=RunnerConfig(intra_op_threads=1, warmup_rows=(1, 8)),
        scheduler=SchedulerConfig(
            max_rows=64, max_queue=256, max_beam=8, max_src_tokens=64, max_output_len=512
        ),
        max_texts=16,
        max_text_chars=100,
        grace_period_s=10.0,
    )
    return dataclasses.replace(config, **overrides)


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds (a client's answer can come a moment before the server's
    own bookkeeping of the call); fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


def date_texts(n: int) -> list[str]:
    """n source texts of the dates task that the tiny model was not trained on."""
    from training.dates import held_out_pairs

    pairs = held_out_pairs()
    step = max(1, len(pairs) // n)
    return [src for src, _ in pairs[::step][:n]]
