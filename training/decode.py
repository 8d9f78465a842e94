"""The PyTorch reference decoder: greedy and beam search over `model.decode_step`, batched.

Every source of a batch has its own `s2s.search.BeamSearch`; their live rows are stacked into one
(R, ...) batch for each decoder step. This is the reference the ONNX Runtime decoder and the
server must equal token for token, so it does exactly what they do:
- the first state is the encoder's final state, the first input feed is zeros, the first token
  is <bos>;
- each row supplies its k = BeamSearch.k best candidates (clamped to the vocabulary), ordered by
  log-prob descending with ties broken by the lower token id (ONNX TopK's rule);
- BeamSearch decides what lives and finishes; its `parents` reorder the decoder state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from s2s.search import BeamSearch, Hypothesis
from s2s.tokenizer import BOS_ID, UNK_ID, Tokenizer
from training.data import pad
from training.model import Seq2Seq


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 1  # 1 is greedy decoding
    n_best: int = 1  # hypotheses returned per source, best first
    max_len: int = 100  # output tokens at most (eos not counted)
    length_penalty: float = 0.0  # alpha; 0 ranks by raw log-prob, which favours short outputs
    length_norm: str = "gnmt"  # "gnmt" or "avg" (OpenNMT-py's default with alpha 1): s2s.search
    keep_attention: bool = False  # return each hypothesis' attention rows (out_len, src_len)
    batch_size: int = 64  # sources encoded and decoded together


def top_k(log_probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, V) -> the k best (log-probs, ids) per row, ties by lower id first.

    torch.topk leaves the order of equal values unspecified; a stable descending sort does not."""
    k = min(k, log_probs.size(-1))
    values, ids = torch.sort(log_probs, dim=-1, descending=True, stable=True)
    return values[:, :k], ids[:, :k]


@torch.no_grad()
def decode_batch(
    model: Seq2Seq, sources: Sequence[Sequence[int]], cfg: DecodeConfig
) -> list[list[Hypothesis]]:
    """Decode up to cfg.batch_size sources (lists of ids, no specials) together."""
    model.eval()
    device = next(model.parameters()).device
    src = pad(sources).to(device)  # (B, T)
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.int64, device=device)
    enc = model.encode(src, lengths)
    searches = [
        BeamSearch(
            cfg.beam_size,
            cfg.n_best,
            cfg.max_len,
            cfg.length_penalty,
            cfg.keep_attention,
            length_norm=cfg.length_norm,
        )
        for _ in sources
    ]
    # Row r of the step batch belongs to source row_src[r]; at step 0 each source has one row.
    row_src = torch.arange(len(sources), device=device)
    state = enc.state  # each (L, R, H)
    feed = enc.memory.new_zeros(len(sources), model.cfg.hidden)  # (R, H)
    prev = torch.full((len(sources),), BOS_ID, dtype=torch.int64, device=device)
    mask_all = Seq2Seq.source_mask(lengths, src.size(1))  # (B, T)
    while True:
        out = model.decode_step(prev, state, feed, enc.memory[row_src], enc.keys[row_src], mask_all[row_src])
        values, ids = top_k(out.log_probs, searches[0].k)  # every search has this beam
        values, ids = values.cpu().numpy(), ids.cpu().numpy()
        attn = out.attn.cpu().numpy() if cfg.keep_attention else None
        row_src_np = row_src.cpu().numpy()
        keep, tokens, owners = [], [], []
        start = 0
        # Rows are grouped by source, in source order, because we rebuild them that way below.
        for b, search in enumerate(searches):
            if search.done:
                continue
            n = search.num_live
            assert (row_src_np[start : start + n] == b).all(), "rows out of step with their searches"
            sl = slice(start, start + n)
            parents = search.advance(values[sl], ids[sl], attn[sl] if attn is not None else None)
            if not search.done:
                keep.extend((start + parents).tolist())
                tokens.extend(search.next_tokens.tolist())
                owners.extend([b] * len(parents))
            start += n
        if not keep:
            break
        index = torch.tensor(keep, dtype=torch.int64, device=device)
        state = tuple(s[:, index] for s in out.state)
        feed = out.feed[index]
        row_src = torch.tensor(owners, dtype=torch.int64, device=device)
        prev = torch.tensor(tokens, dtype=torch.int64, device=device)
    results = [search.results() for search in searches]
    if cfg.keep_attention:  # drop the batch's padding columns: (out_len, T) -> (out_len, src_len)
        for hyps, source in zip(results, sources, strict=True):
            for h in hyps:
                h.attention = h.attention[:, : len(source)]
    return results


def decode(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[Hypothesis]]:
    """Decode any number of sources, cfg.batch_size at a time, sorted by length for less padding.
    Results come back in the order of `sources`. on_batch(n) is called after each batch of n
    sources (a progress bar)."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for s in range(0, len(order), cfg.batch_size):
        chunk = order[s : s + cfg.batch_size]
        for i, hyps in zip(chunk, decode_batch(model, [sources[i] for i in chunk], cfg), strict=True):
            results[i] = hyps
        if on_batch is not None:
            on_batch(len(chunk))
    return results


def translate(
    model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer, texts: Sequence[str], cfg: DecodeConfig
) -> list[str]:
    """Texts -> best detokenised translations. An empty text decodes as a lone <unk>."""
    sources = [src_tok.encode(t) or [UNK_ID] for t in texts]
    return [tgt_tok.decode(hyps[0].tokens) for hyps in decode(model, sources, cfg)]


def attention_matrix(hyp: Hypothesis) -> np.ndarray:
    """(out_len, src_len) attention of a hypothesis decoded with keep_attention."""
    if hyp.attention is None:
        raise ValueError("hypothesis has no attention: decode with keep_attention=True")
    return hyp.attention
