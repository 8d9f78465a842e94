"""nn.Modules whose forward is exactly one bundle graph, with the graph's flat inputs and outputs.

The model's own API (model.encode / model.decode_step) takes and returns tuples and named tuples;
ONNX graphs take and return flat lists of named tensors in the order of export/spec.py. These
wrappers are the only place that maps one to the other, so the graphs compute what the reference
decoder computes, step for step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.model import StepOutput


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

    def decode_step(self, prev_tokens, state, feed, memory, keys, src_mask):
        """The step this graph computes (the model's own; FoldedDecoderStepGraph's differs)."""
        return self.model.decode_step(prev_tokens, state, feed, memory, keys, src_mask)

    def forward(self, prev_tokens: torch.Tensor, *rest: torch.Tensor):
        state = tuple(rest[: self.num_states])
        feed, memory, keys, src_mask, k = rest[self.num_states :]
        out = self.decode_step(prev_tokens, state, feed, memory, keys, src_mask)
        # k[0] (not int(k)) keeps k a graph input: the tracer records it as TopK's K tensor.
        top_log_probs, top_ids = torch.topk(out.log_probs, k[0], dim=-1, largest=True, sorted=True)
        return (*out.state, out.feed, out.attn, top_log_probs, top_ids, out.log_probs)


# The folds a step graph may take (manifest "exporter.folded").
FOLD_INPUT = "input-projection"
FOLD_OUTPUT = "tied-output"
MAX_INPUT_TABLE_BYTES = 256 << 20  # a larger (V, G) table costs more memory than its product saves


def step_folds(model: nn.Module, max_table_bytes: int = MAX_INPUT_TABLE_BYTES) -> tuple[str, ...]:
    """The constant products worth taking at export for `model`'s step graph.

    - FOLD_INPUT: the first layer's input projection of the embedding becomes a (V, G) table
      (G = 4H for LSTM, 3H for GRU): one row gathered per hypothesis instead of an E x G product.
      At most `max_table_bytes` of float32.
    - FOLD_OUTPUT: a tied output behind a bottleneck (H -> E -> V) becomes one (V, H) matrix,
      when that is fewer multiply-adds (H <= E(V + H) / V, i.e. about H <= E).
    On the eng-fra model (E 320, H 256, V 4,000, 2 x 256 LSTM) the step at 500 rows took
    44-51 ms against 58-63 ms (docs/performance.md)."""
    decoder = model.decoder
    cell = decoder.cells[0]
    vocab, emb = decoder.embed.weight.shape
    folds = []
    if vocab * cell.weight_ih.shape[0] * 4 <= max_table_bytes:
        folds.append(FOLD_INPUT)
    hidden = decoder.cfg.hidden
    if decoder.bottleneck is not None and vocab * hidden <= emb * (vocab + hidden):
        folds.append(FOLD_OUTPUT)
    return tuple(folds)


class FoldedDecoderStepGraph(DecoderStepGraph):
    """DecoderStepGraph computing the same function with constant products taken at export
    (`step_folds`): the graph's inputs and outputs are the plain graph's.

    - FOLD_INPUT: x W_ih^T + b_ih = embed(prev) W_e^T + b_ih + feed W_f^T, and the first two
      terms are row `prev` of one table;
    - FOLD_OUTPUT: out(bottleneck(f)) = f (E W_b)^T + b.

    The tables are computed in float64 and stored in float32, so each entry is the exactly
    rounded value of what the reference sums in float32; validation holds the graph to the
    plain graph's tolerance."""

    def __init__(self, model: nn.Module, num_states: int, folds: tuple[str, ...]):
        super().__init__(model, num_states)
        unknown = set(folds) - {FOLD_INPUT, FOLD_OUTPUT}
        assert not unknown, f"unknown folds {unknown}"
        self.folds = folds
        decoder = model.decoder
        with torch.no_grad():
            if FOLD_INPUT in folds:
                cell = decoder.cells[0]
                emb = decoder.embed.weight.shape[1]
                weight = cell.weight_ih.double()  # (G, E + H)
                table = decoder.embed.weight.double() @ weight[:, :emb].T  # (V, G)
                if cell.bias_ih is not None:
                    table += cell.bias_ih.double()
                self.register_buffer("input_table", table.float())
                self.register_buffer("feed_weight", weight[:, emb:].float().contiguous())  # (G, H)
            if FOLD_OUTPUT in folds:
                folded = decoder.out.weight.double() @ decoder.bottleneck.weight.double()  # (V, H)
                self.register_buffer("out_weight", folded.float())

    def decode_step(self, prev_tokens, state, feed, memory, keys, src_mask):
        decoder = self.model.decoder
        if FOLD_INPUT in self.folds:
            state, feed, attn = self._step_from_table(prev_tokens, state, feed, memory, keys, src_mask)
        else:
            state, feed, attn = decoder.step(prev_tokens, state, feed, memory, keys, src_mask)
        if FOLD_OUTPUT in self.folds:
            logits = F.linear(feed, self.out_weight, decoder.out.bias)
        else:
            logits = decoder.project(feed)
        return StepOutput(state, feed, attn, F.log_softmax(logits, dim=-1))

    def _step_from_table(self, prev_tokens, state, feed, memory, keys, src_mask):
        """Decoder.step (training/model.py, in eval mode) with layer 0's input projection read
        from the table; the layers above, the attention and the combine are the model's own."""
        decoder = self.model.decoder
        projected = F.embedding(prev_tokens, self.input_table) + feed @ self.feed_weight.T
        hs, cs = [], []
        x = None
        for i, cell in enumerate(decoder.cells):
            layer_state = tuple(s[i] for s in state)  # (h, c) or (h,)
            if i == 0:
                h, c = _cell_from_projection(cell, projected, layer_state)
            elif isinstance(cell, nn.LSTMCell):
                h, c = cell(x, layer_state)
            else:
                h, c = cell(x, layer_state[0]), None
            hs.append(h)
            cs += [c] if c is not None else []
            x = h
        context, attn = decoder.attention(h, keys, memory, src_mask)
        feed = torch.tanh(decoder.combine(torch.cat([context, h], dim=1)))
        new_state = (torch.stack(hs), torch.stack(cs)) if cs else (torch.stack(hs),)
        return new_state, feed, attn


def _cell_from_projection(cell: nn.Module, projected: torch.Tensor, state: tuple) -> tuple:
    """torch's LSTMCell / GRUCell with the input projection x W_ih^T + b_ih already taken:
    (h, c) for LSTM, (h, None) for GRU."""
    h = state[0]
    hidden = F.linear(h, cell.weight_hh, cell.bias_hh)
    if isinstance(cell, nn.LSTMCell):
        i, f, g, o = (projected + hidden).chunk(4, dim=1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    i_r, i_z, i_n = projected.chunk(3, dim=1)
    h_r, h_z, h_n = hidden.chunk(3, dim=1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, None
