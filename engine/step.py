"""The one place a decoder step runs over ONNX Runtime and advances searches.

`encode(runner, keys, sources)` runs the encoder over newly arrived requests and builds their
`<bos>` rows; `step(runner, batch, decodings)` runs one decoder step over every row of `batch`,
advances each request's BeamSearch and returns what became final, the surviving rows and the
timings. The server's scheduler and the per-request decoder (engine/decode.py) are both loops
around these two calls, so they can differ only in which rows share a step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.batch import DecodeBatch
from engine.decoding import Decoding, advance
from engine.events import Event, Failed
from engine.sessions import Runner, StepOutput
from s2s.search import Candidates, best_candidates

log = logging.getLogger(__name__)

# Rows a group of requests must hold to be ranked together. The batched ranking costs ~50 us a
# step plus ~3 us (greedy) or ~10 us (beam 5) a request; alone, a request costs ~14 us greedy and
# ~32 us at beam 5 (with its share of the step). Measured break-even: ~10-12 greedy requests, 3 of
# beam 5. Below it, and always for a lone request (the per-request decoders, the benchmarks'
# baselines), each request ranks its own.
RANK_TOGETHER_ROWS = 12


@dataclass
class StepTimings:
    rows: int  # decoder rows the step ran
    decoder_s: float  # the ONNX Runtime call
    search_s: float  # advancing the searches and selecting the surviving rows


@dataclass
class StepOutcome:
    events: list[tuple[int, Event]]  # (request key, event) in batch order; a Finished ends a key
    batch: DecodeBatch | None  # the rows the next step continues; None when every request ended
    timings: StepTimings
    gone: list[int]  # keys that left without advancing: `cancelled` while the step ran


def encode(
    runner: Runner, keys: Sequence[int], sources: Sequence[Sequence[int]]
) -> tuple[DecodeBatch, float]:
    """One encoder run over `sources` (token ids, no specials), padded to the longest; their
    `<bos>` rows, owned by `keys`, and the seconds the encoder took."""
    sizes = [len(s) for s in sources]
    src = np.zeros((len(sources), max(sizes)), dtype=np.int64)  # 0 = <pad>, (N, T)
    for i, ids in enumerate(sources):
        src[i, : sizes[i]] = ids
    lengths = np.array(sizes, dtype=np.int64)
    started = time.perf_counter()
    enc = runner.encode(src, lengths)
    seconds = time.perf_counter() - started
    batch = DecodeBatch.build(list(keys), enc.memory, enc.keys, lengths, enc.init_state, runner.graphs.bos_id)
    return batch, seconds


def step(runner: Runner, batch: DecodeBatch, decodings: Mapping[int, Decoding]) -> StepOutcome:
    """One decoder step for every row of `batch`; `decodings` holds the state of every request
    that owns rows in it (and may hold others). A request that raises while advancing gets a
    Failed event and leaves; an error in the ONNX Runtime call itself propagates."""
    ranges = batch.row_ranges()
    k = max(decodings[key].search.k for key in ranges)
    out = runner.step(batch, k)
    started = time.perf_counter()
    events: list[tuple[int, Event]] = []
    gone: list[int] = []
    index: list[int] = []  # batch rows the next step continues
    tokens: list[int] = []  # the token each of them feeds
    ranked = _rank_together(out, ranges, decodings)
    for key, (start, stop) in ranges.items():
        state = decodings[key]
        if state.cancelled:  # cancelled while the step ran: nobody waits for its tokens
            gone.append(key)
            continue
        try:
            parents = advance(key, state, out, start, stop, events, ranked.get(key))
        except Exception as exc:  # noqa: BLE001 - one request's failure must not end the others
            log.exception("request %d failed", key)
            events.append((key, Failed(exc)))
            continue
        if parents is None:  # finished: its Finished event is in `events`
            continue
        index.extend([row + start for row in parents] if start else parents)  # batch rows
        tokens.extend(state.search.next_token_ids)
    survivors = None
    if index:
        prev = np.array(tokens, dtype=np.int64)
        survivors = batch.select(np.array(index, dtype=np.int64), prev, state=out.state, feed=out.feed)
    timings = StepTimings(len(batch), out.seconds, time.perf_counter() - started)
    return StepOutcome(events, survivors, timings, gone)


def _rank_together(
    out: StepOutput, ranges: Mapping[int, tuple[int, int]], decodings: Mapping[int, Decoding]
) -> dict[int, Candidates]:
    """The ranked candidates of the step's requests, one set of numpy calls for all requests
    with the same live rows and k (under continuous batching: the newcomers' one row, everyone
    else's beam, greedy requests' one row), for groups of at least RANK_TOGETHER_ROWS rows. A
    request left out is ranked by its own `advance` (greedy by its fast path)."""
    if out.topk_ids.shape[0] < RANK_TOGETHER_ROWS:  # no group can be large enough
        return {}
    groups: dict[tuple[int, int, int], list[int]] = {}
    for key, (start, stop) in ranges.items():
        state = decodings[key]
        search = state.search
        if not state.cancelled and search.num_live == stop - start:
            groups.setdefault((stop - start, search.k, search.walk_length), []).append(key)
    ranked: dict[int, Candidates] = {}
    for (rows, k, walk_length), keys in groups.items():
        if len(keys) * rows < RANK_TOGETHER_ROWS:
            continue
        starts = np.array([ranges[key][0] for key in keys], dtype=np.int64)
        index = starts[:, None] + np.arange(rows)  # (m, rows) batch rows
        scores = np.array([decodings[key].search.live_scores for key in keys], dtype=np.float32)
        top_log_probs = out.topk_log_probs[index][:, :, :k]  # (m, rows, k): the first k are this k's
        top_ids = out.topk_ids[index][:, :, :k]
        ranked.update(zip(keys, best_candidates(scores, top_log_probs, top_ids, walk_length), strict=True))
    return ranked
