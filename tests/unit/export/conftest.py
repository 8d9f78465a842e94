"""Shared fixtures: one small trained model exported once per session, with every variant."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="export tests need torch (pip install .[train])")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, checkpoint dict) of a small LSTM/general model trained briefly on dates."""
    from export.testing import tiny_model

    return tiny_model(cell="lstm", score="general", train_steps=60)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny) -> Path:
    """A full bundle of `tiny`: fp32 + optimised graphs, int8 and fp16 variants."""
    from export.exporter import ExportConfig, export_model

    model, checkpoint = tiny
    out = tmp_path_factory.mktemp("bundles")
    return export_model(model, checkpoint, ExportConfig(out_dir=out, quantize="int8", fp16=True))


@pytest.fixture(scope="session")
def tiny_checkpoint_file(tmp_path_factory, tiny) -> Path:
    """`tiny` saved as a checkpoint file, the way `s2s train` saves one."""
    from training.model import save_checkpoint

    model, checkpoint = tiny
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    extra = {k: v for k, v in checkpoint.items() if k not in ("format", "format_version")}
    save_checkpoint(path, model, **extra)
    return path
