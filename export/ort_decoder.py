"""Decode with a bundle's graphs: numpy + ONNX Runtime, one request at a time (torch-free).

This is the reference loop the server's continuous-batching scheduler grows from, and the "ONNX
Runtime loop per request" baseline of the benchmarks. The model runs in ONNX Runtime; every search
decision (which rows live, which finish, when to stop) is s2s.search.BeamSearch, the same object
the PyTorch reference decoder uses, so the two can differ only in the numbers the graphs compute.

Per request: one encoder run (batch 1), then one decoder step per output token over the live rows
(1 row at step 0, then up to beam_size), reading the step's in-graph top-k and reordering the
state rows by the parents BeamSearch returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from s2s.bundle import Bundle, load_bundle
from s2s.search import BeamSearch, Hypothesis
from s2s.tokenizer import BOS_ID

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def max_output_length(src_len: int, max_length: int, max_length_ratio: float | None) -> int:
    """Output token cap: `max_length`, and at most ceil(ratio * source tokens) when a ratio is set."""
    if max_length_ratio:
        max_length = min(max_length, math.ceil(max_length_ratio * src_len))
    return max(1, max_length)


def session_options(threads: int | None = None, optimization_level: str = "all") -> ort.SessionOptions:
    """Session options for decoding: `threads` intra-op threads (None: ONNX Runtime's choice)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization_level]
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 1  # 1 = greedy
    n_best: int = 1  # hypotheses returned, best first; <= beam_size
    max_length: int | None = None  # output tokens; None: the bundle's default
    max_length_ratio: float | None = None  # cap at ceil(ratio * src tokens); None: bundle's; 0: no cap
    length_penalty: float = 0.0  # GNMT alpha; 0 ranks by raw log-prob
    keep_attention: bool = False  # return each hypothesis's attention rows


class OrtModel:
    """The bundle's two graphs in ONNX Runtime sessions, called with numpy arrays."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        precision: str = "fp32",
        optimized: bool = True,
        provider: str = "cpu",
        threads: int | None = None,
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        providers = [PROVIDERS.get(provider, provider)]
        opts = session_options(threads)
        self.encoder = ort.InferenceSession(
            str(self.bundle.graph_path("encoder", precision, optimized)), opts, providers=providers
        )
        self.decoder = ort.InferenceSession(
            str(self.bundle.graph_path("decoder_step", precision, optimized)), opts, providers=providers
        )
        self.state_names = self.bundle.state  # ["h", "c"] (LSTM) or ["h"] (GRU)
        self.vocab_size = self.bundle.model.tgt_vocab_size
        self._step_outputs = [o.name for o in self.decoder.get_outputs() if o.name != "log_probs"]

    def encode(self, src_ids: np.ndarray, src_lengths: np.ndarray) -> dict[str, np.ndarray]:
        """(B, T) int64 ids, (B,) lengths -> {memory, keys, init_h[, init_c]}."""
        names = [o.name for o in self.encoder.get_outputs()]
        values = self.encoder.run(names, {"src_ids": src_ids, "src_lengths": src_lengths})
        return dict(zip(names, values, strict=True))

    def step(self, feeds: dict[str, np.ndarray], full_log_probs: bool = False) -> dict[str, np.ndarray]:
        """One decoder step. Without full_log_probs the (rows, V) output is not copied out."""
        names = self._step_outputs + (["log_probs"] if full_log_probs else [])
        return dict(zip(names, self.decoder.run(names, feeds), strict=True))


class OrtDecoder:
    """Greedy and beam-search decoding of one request at a time over an OrtModel."""

    def __init__(self, model: OrtModel):
        self.model = model
        self.bundle = model.bundle

    def decode_ids(self, src_ids: Sequence[int], config: DecodeConfig = DecodeConfig()) -> list[Hypothesis]:
        """Source token ids (no specials) -> the n_best hypotheses, best first."""
        if len(src_ids) == 0:
            raise ValueError("cannot decode an empty source (no tokens)")
        max_len = max_output_length(
            len(src_ids),
            config.max_length or self.bundle.max_length,
            config.max_length_ratio if config.max_length_ratio is not None else self.bundle.max_length_ratio,
        )
        search = BeamSearch(
            beam_size=config.beam_size,
            n_best=config.n_best,
            max_len=max_len,
            length_penalty=config.length_penalty,
            keep_attention=config.keep_attention,
        )
        return self.run_search(np.asarray([src_ids], dtype=np.int64), search)

    def run_search(self, src: np.ndarray, search: BeamSearch) -> list[Hypothesis]:
        """Drive `search` to the end for the single source `src` (1, T)."""
        src_len = src.shape[1]
        enc = self.model.encode(src, np.asarray([src_len], dtype=np.int64))
        state = {name: enc[f"init_{name}"] for name in self.model.state_names}  # (L, 1, H) each
        feed = np.zeros((1, enc["memory"].shape[2]), dtype=np.float32)  # input feeding starts at 0
        k = np.asarray([min(search.k, self.model.vocab_size)], dtype=np.int64)
        tokens = np.asarray([BOS_ID], dtype=np.int64)
        per_rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        while not search.done:
            rows = len(tokens)
            if rows not in per_rows:  # the source repeated once per live row
                per_rows[rows] = (
                    np.repeat(enc["memory"], rows, axis=0),
                    np.repeat(enc["keys"], rows, axis=0),
                    np.ones((rows, src_len), dtype=bool),
                )
            memory, keys, mask = per_rows[rows]
            feeds = {"prev_tokens": tokens, "feed": feed, "memory": memory, "keys": keys, "src_mask": mask}
            feeds.update(state)
            feeds["k"] = k
            out = self.model.step(feeds)
            parents = search.advance(
                out["topk_log_probs"], out["topk_ids"], out["attn"] if search.keep_attention else None
            )
            if search.done:
                break
            state = {name: out[f"{name}_out"][:, parents] for name in self.model.state_names}
            feed = out["feed_out"][parents]
            tokens = search.next_tokens
        return search.results()

    def translate(self, text: str, config: DecodeConfig = DecodeConfig()) -> list[tuple[str, Hypothesis]]:
        """Text in, (detokenised text, hypothesis) pairs out, best first."""
        ids = self.bundle.src_tokenizer.encode(text)
        hyps = self.decode_ids(ids, config)
        return [(self.bundle.tgt_tokenizer.decode(h.tokens), h) for h in hyps]
