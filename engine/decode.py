"""Decode one request at a time with a bundle's graphs, over the engine's own step (torch-free).

The export's parity tests check this decoder against the PyTorch reference (training/decode.py),
and the benchmarks use it as the "ONNX Runtime loop per request" baseline. It is the server's
scheduler without the batching: the same `encode` and `step` (engine/step.py) over a batch that
only ever holds one request's rows, so the model runs in ONNX Runtime and every search decision is
s2s.search.BeamSearch, the object the PyTorch reference uses too.

Per request: one encoder run (batch 1), then one decoder step per output token over the live rows
(1 row at step 0, then up to beam_size), reading the step's in-graph top-k and reordering the state
rows by the parents BeamSearch returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.config import DecodeConfig
from engine.decoding import Decoding
from engine.events import Failed, Finished
from engine.sessions import Runner, RunnerConfig
from engine.step import encode, step
from s2s.bundle import Bundle, load_bundle
from s2s.search import BeamSearch, Hypothesis

_KEY = 0  # the one request of the batch


class Decoder:
    """Greedy and beam-search decoding of one request at a time over a bundle's Runner."""

    def __init__(self, runner: Runner, bundle: Bundle):
        self.runner = runner
        self.bundle = bundle

    @classmethod
    def open(cls, bundle: Bundle | str | Path, config: RunnerConfig = RunnerConfig()) -> Decoder:
        """Sessions for `bundle` (a Bundle or its directory) as `config` says; not warmed up."""
        bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        return cls(Runner.from_bundle(bundle, config), bundle)

    def decode_ids(self, src_ids: Sequence[int], config: DecodeConfig = DecodeConfig()) -> list[Hypothesis]:
        """Source token ids (no specials) -> the n_best hypotheses, best first."""
        if len(src_ids) == 0:
            raise ValueError("cannot decode an empty source (no tokens)")
        config = config.resolve(self.bundle.max_length, self.bundle.max_length_ratio)
        search = BeamSearch(
            beam_size=config.beam_size,
            n_best=config.n_best,
            max_len=config.max_len_for(len(src_ids)),
            length_penalty=config.length_penalty,
            keep_attention=config.keep_attention,
            eos_id=self.runner.graphs.eos_id,
        )
        return self.run_search(np.asarray([src_ids], dtype=np.int64), search)

    def run_search(self, src: np.ndarray, search: BeamSearch) -> list[Hypothesis]:
        """Drive `search` to the end for the single source `src` (1, T)."""
        assert src.ndim == 2 and src.shape[0] == 1, f"one source of shape (1, T) expected, got {src.shape}"
        batch, _ = encode(self.runner, [_KEY], [src[0]])
        decodings = {_KEY: Decoding(search=search, src_len=src.shape[1])}
        while batch is not None:
            outcome = step(self.runner, batch, decodings)
            batch = outcome.batch
        _, last = outcome.events[-1]  # a request ends with Finished or Failed
        if isinstance(last, Failed):
            raise last.error
        assert isinstance(last, Finished), f"the search ended without a result: {last}"
        return last.hypotheses

    def translate(self, text: str, config: DecodeConfig = DecodeConfig()) -> list[tuple[str, Hypothesis]]:
        """Text in, (detokenised text, hypothesis) pairs out, best first."""
        ids = self.bundle.src_tokenizer.encode(text)
        hyps = self.decode_ids(ids, config)
        return [(self.bundle.tgt_tokenizer.decode(h.tokens), h) for h in hyps]
