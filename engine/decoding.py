"""One request's decoding state, and its share of a decoder step: feed its rows' candidates to its
BeamSearch, report the tokens that became final, and its hypotheses once the search is done.

Nothing here knows who asked: what the caller should see is appended to `events` as
(key, event) pairs; the scheduler maps keys to handles, the per-request decoder reads the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.events import Event, Finished, TokenEvent
from engine.sessions import StepOutput
from s2s.search import BeamSearch, Candidates


@dataclass(eq=False, kw_only=True)
class Decoding:
    search: BeamSearch
    src_len: int  # source tokens: attention rows are cut to this from the batch's padded width
    stream: bool = False  # report TokenEvents as tokens become final
    streamed: int = 0  # output tokens already reported as TokenEvents
    steps: int = 0  # decoder steps taken

    @property
    def cancelled(self) -> bool:
        """True when the rows should leave at the next step without advancing (the scheduler's
        requests answer from their handle; a lone decode is never cancelled)."""
        return False


def advance(key: int, state: Decoding, out: StepOutput, start: int, stop: int,
            events: list[tuple[int, Event]],
            ranked: Candidates | None = None) -> list[int] | None:  # fmt: skip
    """Advance the request owning batch rows [start, stop), from its `ranked` candidates when the
    caller ranked them with the step's other requests. Returns the rows (relative to start) the
    next step continues, in order, or None when the request finished."""
    search = state.search
    attn = out.attn[start:stop, : state.src_len]  # (rows, src_len): drop the batch's padding
    if ranked is not None:
        parents = search.advance_ranked(ranked, attn if search.keep_attention else None)
    else:
        parents = search.advance_list(
            out.topk_log_probs[start:stop, : search.k],  # top-k is sorted: the first k are this k's
            out.topk_ids[start:stop, : search.k],
            attn if search.keep_attention else None,
        )
    state.steps += 1
    if state.stream:
        _stream(key, state, out.topk_log_probs[start:stop], attn, events)
    if search.done:
        _complete(key, state, events)
        return None
    return parents


def _stream(key: int, state: Decoding, top_lps: np.ndarray, attn: np.ndarray,
            events: list[tuple[int, Event]]) -> None:  # fmt: skip
    search = state.search
    if search.beam_size == 1:
        if search.done:  # eos or max_len: the result's tail carries what is left
            return
        # Greedy and not done: the surviving token is the row's best candidate (an eos ranked
        # first would have finished the search), so its log-prob is candidate 0's.
        token = int(search.next_tokens[0])
        attention = attn[:1].copy() if search.keep_attention else None
        events.append((key, TokenEvent(state.streamed, [token], [float(top_lps[0, 0])], attention)))
        state.streamed += 1
        return
    prefix = search.stable_prefix()
    if len(prefix) > state.streamed:
        events.append((key, TokenEvent(state.streamed, prefix[state.streamed :], None)))
        state.streamed = len(prefix)


def _complete(key: int, state: Decoding, events: list[tuple[int, Event]]) -> None:
    hypotheses = state.search.results()
    best = hypotheses[0]
    if state.stream and len(best.tokens) > state.streamed:
        tail = slice(state.streamed, None)
        attention = best.attention[tail] if best.attention is not None else None
        events.append(
            (key, TokenEvent(state.streamed, best.tokens[tail], best.token_log_probs[tail], attention))
        )
    events.append((key, Finished(hypotheses, state.steps)))
