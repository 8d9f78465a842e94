"""Scheduler on a real bundle in real ONNX Runtime sessions: batch invariance, equality with the
per-request decoder, streaming, cancellation, deadlines, a full queue, draining, fairness.

Timing is controlled, never measured: `GatedRunner` is the real runner with a gate the test can
close to hold the decode loop inside a step, and a log of which requests each step ran.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest

from engine.decode import Decoder
from engine.sessions import RunnerConfig
from s2s.search import BeamSearch
from service.errors import Cancelled, DeadlineExceeded, Draining, InvalidRequest, QueueFull
from service.handle import DecodeRequest, Result, TokenEvent
from service.scheduler import Scheduler, SchedulerConfig

# Alone vs batched, per log-prob and attention weight (float32 sums taken in another order).
# Scores sum up to max_len log-probs, so they are held to it relatively: 1e-5 of their size.
TOLERANCE = 1e-5


@pytest.fixture
async def scheduler(runner):
    runner.reset()
    scheduler = Scheduler(runner, SchedulerConfig(max_rows=256, max_queue=256))
    await scheduler.start()
    yield scheduler
    runner.release()
    await scheduler.stop()


def _requests(bundle, count: int, seed: int) -> list[DecodeRequest]:
    """Sources of many lengths from the bundle's own vocabulary, greedy and beam mixed."""
    rng = random.Random(seed)
    vocab = bundle.model.src_vocab_size
    out = []
    for _ in range(count):
        beam = rng.choice([1, 1, 2, 3, 5])
        out.append(
            DecodeRequest(
                src_ids=[rng.randrange(4, vocab) for _ in range(rng.randrange(1, 25))],
                beam_size=beam,
                n_best=rng.randint(1, beam),
                max_len=rng.randrange(2, 30),
                length_penalty=rng.choice([0.0, 0.6]),
                want_attention=True,
            )
        )
    return out


def _assert_same(alone: Result, batched: Result) -> None:
    assert len(alone.hypotheses) == len(batched.hypotheses)
    for a, b in zip(alone.hypotheses, batched.hypotheses, strict=True):
        assert a.tokens == b.tokens
        assert a.finish_reason == b.finish_reason
        assert a.score == pytest.approx(b.score, rel=TOLERANCE, abs=TOLERANCE)
        assert a.raw_score == pytest.approx(b.raw_score, rel=TOLERANCE, abs=TOLERANCE)
        np.testing.assert_allclose(a.token_log_probs, b.token_log_probs, atol=TOLERANCE)
        np.testing.assert_allclose(a.attention, b.attention, atol=TOLERANCE)


async def test_results_do_not_depend_on_batching(bundle, scheduler):
    requests = _requests(bundle, 64, seed=1)
    alone = []
    for request in requests:
        alone.append(await scheduler.submit(request).result())
    handles = []
    for i, request in enumerate(requests):  # 64 at once, arriving over several steps
        handles.append(scheduler.submit(request))
        if i % 9 == 8:
            await asyncio.sleep(0.003)
    batched = await asyncio.gather(*(h.result() for h in handles))
    assert max(scheduler.runner.rows_per_step) > 32, "requests should have shared steps"
    for a, b in zip(alone, batched, strict=True):
        _assert_same(a, b)


async def test_results_equal_the_per_request_ort_decoder(bundle, scheduler):
    reference = Decoder.open(bundle, RunnerConfig(intra_op_threads=1))
    requests = _requests(bundle, 24, seed=2)
    handles = [scheduler.submit(r) for r in requests]
    for request, handle in zip(requests, handles, strict=True):
        search = BeamSearch(
            request.beam_size,
            request.n_best,
            request.max_len,
            request.length_penalty,
            keep_attention=True,
            eos_id=bundle.special_ids["eos"],
        )
        expected = reference.run_search(np.asarray([request.src_ids], dtype=np.int64), search)
        _assert_same(Result(expected, 0, 0, 0), await handle.result())


@pytest.mark.parametrize("beam_size", [1, 4])
async def test_streamed_tokens_are_the_best_hypothesis(bundle, scheduler, beam_size):
    for request in _requests(bundle, 6, seed=3):
        request = DecodeRequest(request.src_ids, beam_size, 1, 20, want_attention=True, stream=True)
        items = [item async for item in scheduler.submit(request)]
        result = items[-1]
        assert isinstance(result, Result)
        events = items[:-1]
        assert all(isinstance(e, TokenEvent) for e in events)
        best = result.hypotheses[0]
        assert [t for e in events for t in e.tokens] == best.tokens
        assert [e.position for e in events] == list(np.cumsum([0] + [len(e.tokens) for e in events])[:-1])
        if beam_size == 1:  # greedy knows each token's log-prob and attention row at once
            assert [lp for e in events for lp in e.log_probs] == pytest.approx(best.token_log_probs)
            np.testing.assert_allclose(np.concatenate([e.attention for e in events]), best.attention)


async def test_cancel_removes_the_rows_before_the_next_step(bundle, scheduler):
    runner = scheduler.runner
    keep, stop = _requests(bundle, 2, seed=4)
    runner.hold()  # the first step of both requests waits at the gate
    kept = scheduler.submit(DecodeRequest(keep.src_ids, 2, 1, 200))
    cancelled = scheduler.submit(DecodeRequest(stop.src_ids, 3, 1, 200, stream=True))
    await runner.wait_for_blocked()
    steps_before = len(runner.owners_per_step)
    assert cancelled.key in runner.owners_per_step[-1]
    cancelled.cancel()
    with pytest.raises(Cancelled):
        await cancelled.result()  # answered at once, while the step is still held
    runner.release()
    await kept.result()
    later = runner.owners_per_step[steps_before:]
    assert later, "the kept request should have run more steps"
    assert all(cancelled.key not in owners for owners in later)


async def test_deadline_fails_the_request_and_removes_its_rows(bundle, scheduler):
    runner = scheduler.runner
    keep, late = _requests(bundle, 2, seed=5)
    runner.hold()
    kept = scheduler.submit(DecodeRequest(keep.src_ids, 2, 1, 200))
    handle = scheduler.submit(DecodeRequest(late.src_ids, 2, 1, 200, deadline=time.monotonic() + 0.05))
    await runner.wait_for_blocked()  # it has started decoding
    steps_before = len(runner.owners_per_step)
    await asyncio.sleep(max(0.0, handle.request.deadline - time.monotonic()) + 0.01)
    runner.release()
    with pytest.raises(DeadlineExceeded):
        await handle.result()
    await kept.result()
    later = runner.owners_per_step[steps_before:]
    assert later and all(handle.key not in owners for owners in later)


async def test_an_expired_request_never_starts(bundle, scheduler):
    source = _requests(bundle, 1, seed=6)[0].src_ids
    handle = scheduler.submit(DecodeRequest(source, deadline=time.monotonic() - 1))
    with pytest.raises(DeadlineExceeded):
        await handle.result()
    assert all(handle.key not in owners for owners in scheduler.runner.owners_per_step)


async def test_a_full_queue_refuses_at_once_while_accepted_requests_complete(bundle, runner):
    runner.reset()
    scheduler = Scheduler(runner, SchedulerConfig(max_rows=2, max_queue=3, max_beam=2))
    await scheduler.start()
    try:
        requests = _requests(bundle, 6, seed=7)
        runner.hold()
        first = scheduler.submit(DecodeRequest(requests[0].src_ids, 2, 1, 10))
        await runner.wait_for_blocked()  # the loop is inside the first request's step
        queued = [scheduler.submit(DecodeRequest(r.src_ids, 1, 1, 10)) for r in requests[1:4]]
        with pytest.raises(QueueFull) as refused:
            scheduler.submit(DecodeRequest(requests[4].src_ids))  # raises without awaiting anything
        assert (refused.value.queued, refused.value.limit) == (3, 3)
        runner.release()
        results = await asyncio.gather(*(h.result() for h in [first, *queued]))
        assert all(r.hypotheses for r in results)
    finally:
        runner.release()
        await scheduler.stop()


async def test_a_waiting_request_joins_at_the_next_step(bundle, scheduler):
    runner = scheduler.runner
    long_request, short_request = _requests(bundle, 2, seed=8)
    runner.hold()
    running = scheduler.submit(DecodeRequest(long_request.src_ids, 5, 1, 200))
    await runner.wait_for_blocked()
    steps_before = len(runner.owners_per_step)
    joining = scheduler.submit(DecodeRequest(short_request.src_ids, 1, 1, 5))
    runner.release()
    await joining.result()
    assert joining.key in runner.owners_per_step[steps_before]  # the first step after it arrived
    running.cancel()


async def test_the_event_loop_runs_while_a_step_is_held(bundle, scheduler):
    runner = scheduler.runner
    runner.hold()
    handle = scheduler.submit(DecodeRequest(_requests(bundle, 1, seed=9)[0].src_ids))
    await runner.wait_for_blocked()
    ticks = 0
    for _ in range(5):  # would hang if the step ran on the event loop's thread
        await asyncio.sleep(0.001)
        ticks += 1
    assert ticks == 5 and not handle.done
    runner.release()
    await handle.result()


async def test_stop_drains_accepted_requests_and_refuses_new_ones(bundle, runner):
    runner.reset()
    scheduler = Scheduler(runner, SchedulerConfig())
    await scheduler.start()
    handles = [scheduler.submit(r) for r in _requests(bundle, 5, seed=10)]
    stopping = asyncio.create_task(scheduler.stop(grace=30))
    await asyncio.sleep(0)
    with pytest.raises(Draining):
        scheduler.submit(_requests(bundle, 1, seed=11)[0])
    await stopping
    results = [await h.result() for h in handles]
    assert all(r.hypotheses for r in results)


async def test_stop_after_the_grace_period_fails_what_is_left_with_draining(bundle, runner):
    runner.reset()
    scheduler = Scheduler(runner, SchedulerConfig())
    await scheduler.start()
    runner.hold()
    handle = scheduler.submit(_requests(bundle, 1, seed=12)[0])
    await runner.wait_for_blocked()
    stopping = asyncio.create_task(scheduler.stop(grace=0.01))
    with pytest.raises(Draining):
        await handle.result()
    runner.release()
    await stopping


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"src_ids": []}, "src_ids"),
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 17}, "beam_size"),
        ({"n_best": 3, "beam_size": 2}, "n_best"),
        ({"max_len": 0}, "max_len"),
        ({"length_penalty": -1.0}, "length_penalty"),
    ],
)
async def test_invalid_requests_are_refused_naming_the_field(scheduler, changes, field):
    request = DecodeRequest(**({"src_ids": [5, 6]} | changes))
    with pytest.raises(InvalidRequest) as refused:
        scheduler.submit(request)
    assert [v.field for v in refused.value.violations] == [field]


def test_gate_is_open_by_default(runner):
    assert isinstance(runner.gate, threading.Event) and runner.gate.is_set()
