"""One running request's share of a decoder step: feed its rows' candidates to its BeamSearch,
stream the tokens that became final, and build its Result when the search is done.

Runs on the scheduler's decode thread. Nothing here touches a handle: what the client should see
is appended to `out` as (handle, item) deliveries, which the scheduler hands to the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2s.search import BeamSearch
from service.handle import RequestHandle, Result, TokenEvent
from service.observer import SchedulerObserver
from service.runner import StepOutput

Delivery = tuple[RequestHandle, "TokenEvent | Result | BaseException"]


@dataclass(eq=False)
class Running:
    handle: RequestHandle
    search: BeamSearch
    src_len: int
    started: float  # when it joined the batch (time.monotonic)
    streamed: int = 0  # output tokens already sent as TokenEvents
    steps: int = 0

    @classmethod
    def start(cls, handle: RequestHandle, eos_id: int, now: float) -> Running:
        r = handle.request
        search = BeamSearch(r.beam_size, r.n_best, r.max_len, r.length_penalty, r.want_attention, eos_id)
        return cls(handle, search, len(r.src_ids), now)


def advance_request(
    state: Running,
    out: StepOutput,
    start: int,
    stop: int,
    now: float,
    deliveries: list[Delivery],
    observer: SchedulerObserver,
) -> np.ndarray | None:
    """Advance the request owning batch rows [start, stop). Returns the rows (relative to start)
    the next step continues, in order, or None when the request finished."""
    search = state.search
    attn = out.attn[start:stop, : state.src_len]  # (rows, src_len): drop the batch's padding
    parents = search.advance(
        out.topk_log_probs[start:stop, : search.k],  # top-k is sorted: the first k are this k's
        out.topk_ids[start:stop, : search.k],
        attn if search.keep_attention else None,
    )
    state.steps += 1
    if state.steps == 1:
        observer.first_token(now - state.handle.submitted)
    if state.handle.request.stream:
        _stream(state, out.topk_log_probs[start:stop], attn, deliveries)
    if search.done:
        _complete(state, now, deliveries, observer)
        return None
    return parents


def _stream(state: Running, top_lps: np.ndarray, attn: np.ndarray, deliveries: list[Delivery]) -> None:
    search, handle = state.search, state.handle
    if search.beam_size == 1:
        if search.done:  # eos or max_len: the result's tail carries what is left
            return
        # Greedy and not done: the surviving token is the row's best candidate (an eos ranked
        # first would have finished the search), so its log-prob is candidate 0's.
        token = int(search.next_tokens[0])
        attention = attn[:1].copy() if handle.request.want_attention else None
        deliveries.append((handle, TokenEvent(state.streamed, [token], [float(top_lps[0, 0])], attention)))
        state.streamed += 1
        return
    prefix = search.stable_prefix()
    if len(prefix) > state.streamed:
        deliveries.append((handle, TokenEvent(state.streamed, prefix[state.streamed :], None)))
        state.streamed = len(prefix)


def _complete(state: Running, now: float, deliveries: list[Delivery], observer: SchedulerObserver) -> None:
    handle = state.handle
    hypotheses = state.search.results()
    best = hypotheses[0]
    if handle.request.stream and len(best.tokens) > state.streamed:
        tail = slice(state.streamed, None)
        attention = best.attention[tail] if best.attention is not None else None
        event = TokenEvent(state.streamed, best.tokens[tail], best.token_log_probs[tail], attention)
        deliveries.append((handle, event))
    result = Result(hypotheses, state.started - handle.submitted, now - handle.submitted, state.steps)
    deliveries.append((handle, result))
    observer.request_finished(best.finish_reason, now - handle.submitted, len(best.tokens))
