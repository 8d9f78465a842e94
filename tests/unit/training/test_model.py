"""Model behaviour the rest of s2s relies on: padding never changes a sentence's outputs, and a
checkpoint rebuilds the exact model."""

from __future__ import annotations

import pytest
import torch

from training.data import collate
from training.model import CheckpointError, load_checkpoint, save_checkpoint

EXAMPLES = [([4, 5, 6, 7, 8], [4, 5, 6]), ([9, 4], [7, 8, 9, 10]), ([5, 6, 7], [4])]


@pytest.mark.parametrize("score", ["dot", "general", "concat", "additive"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_batch_equals_each_sentence_alone(cell: str, score: str, tiny_model) -> None:
    model = tiny_model(cell, score, bidirectional=True)
    batch = collate(EXAMPLES)
    with torch.no_grad():
        together = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, U, V)
        for i, example in enumerate(EXAMPLES):
            alone = collate([example])
            single = model(alone.src, alone.src_lengths, alone.tgt_in)  # (1, U_i, V)
            u = single.size(1)
            torch.testing.assert_close(together[i, :u], single[0], rtol=1e-5, atol=1e-5)


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, tiny_model) -> None:
    model = tiny_model("gru", "additive", bidirectional=False, layers=1)
    tok = {"kind": "char", "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "a"]}
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, name="tiny", src_tokenizer=tok, tgt_tokenizer=tok, train={"steps": 0})
    loaded, data = load_checkpoint(path)
    assert loaded.cfg == model.cfg and data["name"] == "tiny"
    batch = collate(EXAMPLES)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(batch.src, batch.src_lengths, batch.tgt_in),
            model(batch.src, batch.src_lengths, batch.tgt_in),
        )


def test_loading_a_non_checkpoint_names_the_file(tmp_path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(path)
