"""nn.Modules whose forward is exactly one bundle graph, with the graph's flat inputs and outputs.

The model's own API (model.encode / model.decode_step) takes and returns tuples and named tuples;
ONNX graphs take and return flat lists of named tensors in the order of export/spec.py. These
wrappers are the only place that maps one to the other, so the graphs compute what the reference
decoder computes, step for step.
"""

from __future__ import annotations

import torch
from torch import nn


class EncoderGraph(nn.Module):
    """(src_ids (B, T), src_lengths (B,)) -> (memory, keys, init_h[, init_c])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src_ids: torch.Tensor, src_lengths: torch.Tensor):
        enc = self.model.encode(src_ids, src_lengths)
        return (enc.memory, enc.keys, *enc.state)


class DecoderStepGraph(nn.Module):
    """One decoder step with the top-k taken inside the graph.

    Inputs: prev_tokens (R,), the state tensors (h[, c], each (L, R, H)), feed (R, H),
    memory (R, T, H), keys (R, T, A), src_mask (R, T) bool, k (1,) int64.
    Outputs: h_out[, c_out], feed_out, attn (R, T), topk_log_probs (R, k), topk_ids (R, k),
    log_probs (R, V).

    The top-k is in the graph so that greedy and beam search read 2k numbers per row instead of
    copying all V log-probs out of ONNX Runtime every step.
    """

    def __init__(self, model: nn.Module, num_states: int):
        super().__init__()
        self.model = model
        self.num_states = num_states  # 2 for LSTM (h, c), 1 for GRU (h)

    def forward(self, prev_tokens: torch.Tensor, *rest: torch.Tensor):
        state = tuple(rest[: self.num_states])
        feed, memory, keys, src_mask, k = rest[self.num_states :]
        out = self.model.decode_step(prev_tokens, state, feed, memory, keys, src_mask)
        # k[0] (not int(k)) keeps k a graph input: the tracer records it as TopK's K tensor.
        top_log_probs, top_ids = torch.topk(out.log_probs, k[0], dim=-1, largest=True, sorted=True)
        return (*out.state, out.feed, out.attn, top_log_probs, top_ids, out.log_probs)
