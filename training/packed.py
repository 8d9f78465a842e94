"""The decoder's teacher-forced pass over a batch, packed and time-major (used by
`training.loss.packed_loss`): the attentional vectors of the real target positions only.

Rows are sorted by target length, longest first, and each step runs only the rows still inside
their target, as pack_padded_sequence does for nn.LSTM; 42% of an eng-fra (B, U) target grid is
padding. Target embeddings and their dropout are computed once for all positions rather than per
step (each step's embedding backward wrote a dense (V, E) gradient). For an LSTM, the embedding
share of the first layer's gates is one matmul over all positions, and each cell's other input
and recurrent matmuls are one matmul on concatenated weights.

Only the model's parameters are read: `Seq2Seq.decode_step`, which decoding, export and the
server use, is untouched, and tests hold the two paths equal.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from s2s.tokenizer import PAD_ID
from training.model import EncoderOutput, Seq2Seq


class Packed(NamedTuple):
    """A batch reordered by target length (longest first) and flattened time-major: step t holds
    rows 0..counts[t]-1, the rows whose target is longer than t."""

    order: torch.Tensor  # (B,) batch row of each sorted row
    counts: list[int]  # rows alive at each step; non-increasing, counts[0] == B
    tokens_in: torch.Tensor  # (N,) decoder inputs, step after step
    targets: torch.Tensor  # (N,) what each of them should predict


def pack(tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> Packed:
    lengths = (tgt_out != PAD_ID).sum(1)  # (B,) target tokens with <eos>
    order = torch.argsort(lengths, descending=True, stable=True)
    steps = torch.arange(tgt_out.size(1), device=tgt_out.device)
    alive = steps[:, None] < lengths[order][None, :]  # (U, B): a prefix of the rows at every step
    return Packed(
        order,
        alive.sum(1).tolist(),
        tgt_in[order].t()[alive],  # boolean indexing walks (U, B) row-major: time-major order
        tgt_out[order].t()[alive],
    )


def packed_features(model: Seq2Seq, enc: EncoderOutput, mask: torch.Tensor, packed: Packed) -> torch.Tensor:
    """The attentional vectors (N, H) of every real target position, in `packed` order: what
    `Seq2Seq.forward` would compute at those positions with full teacher forcing."""
    dec, cfg = model.decoder, model.cfg
    lstm = cfg.cell == "lstm"
    emb = dec.dropout(dec.embed(packed.tokens_in))  # (N, E)
    if lstm:
        # Layer gates = [emb; feed; h] [W_ih; W_hh]^T + b_ih + b_hh: the embedding share for every
        # position in one matmul, the rest per step in one matmul on concatenated weights.
        first = dec.cells[0]
        inputs = F.linear(emb, first.weight_ih[:, : cfg.emb_dim], first.bias_ih + first.bias_hh)  # (N, 4H)
        weights = [torch.cat([first.weight_ih[:, cfg.emb_dim :], first.weight_hh], 1)]  # (4H, 2H)
        weights += [torch.cat([cell.weight_ih, cell.weight_hh], 1) for cell in dec.cells[1:]]
        biases = [None] + [cell.bias_ih + cell.bias_hh for cell in dec.cells[1:]]
    else:
        inputs = emb
    hs = list(enc.state[0])  # per layer (B, H)
    cs = list(enc.state[1]) if lstm else []
    feed = enc.memory.new_zeros(enc.memory.size(0), cfg.hidden)  # (B, H)
    feeds = []
    # split, not slicing: the backward of a slice writes a zero (N, 4H) gradient per step.
    for n, step_in in zip(packed.counts, inputs.split(packed.counts), strict=True):  # (n, 4H) or (n, E)
        if n < feed.size(0):  # rows whose target ended are dropped from here on
            feed, hs, cs = feed[:n], [h[:n] for h in hs], [c[:n] for c in cs]
        below = feed
        for i, cell in enumerate(dec.cells):
            if lstm:
                shared = step_in if i == 0 else biases[i]  # (n, 4H) or (4H,)
                gates = torch.addmm(shared, torch.cat([below, hs[i]], 1), weights[i].t())  # (n, 4H)
                hs[i], cs[i] = _lstm_update(gates, cs[i])
            else:
                hs[i] = cell(torch.cat([step_in, feed], 1) if i == 0 else below, hs[i])
            if i + 1 < len(dec.cells):  # the per-step path also drops out the top layer, unused
                below = dec.dropout(hs[i])
        context, _ = dec.attention(hs[-1], enc.keys[:n], enc.memory[:n], mask[:n])  # (n, H)
        feed = torch.tanh(dec.combine(torch.cat([context, hs[-1]], 1)))  # (n, H)
        feeds.append(feed)
    return torch.cat(feeds)  # (N, H)


def _lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.LSTMCell's update from its summed gates (R, 4H), in PyTorch's i, f, g, o order."""
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
