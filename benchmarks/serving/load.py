"""Load generation: closed loop at a concurrency or open loop at a rate, and the summary of a run.

A variant's `call(text)` returns (output tokens, output words, seconds to first token or None) or
raises; errors are counted by gRPC status code name (or the exception's type name).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

Call = Callable[[str], Awaitable[tuple[int, int, float | None]]]


@dataclass
class Outcome:
    latency_s: float
    ttft_s: float | None  # streams only: submit to first token
    tokens: int
    words: int
    code: str  # "OK" or the error's status code name


async def _one(call: Call, text: str) -> Outcome:
    started = time.perf_counter()
    try:
        tokens, words, ttft = await call(text)
        code = "OK"
    except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
        tokens, words, ttft = 0, 0, None
        code_of = getattr(exc, "code", None)
        code = code_of().name if callable(code_of) else type(exc).__name__
    return Outcome(time.perf_counter() - started, ttft, tokens, words, code)


async def closed_loop(
    call: Call, texts: Sequence[str], concurrency: int, duration_s: float | None, count: int | None
) -> tuple[list[Outcome], float]:
    """`concurrency` clients each sending their next request when the last one is answered, until
    `count` requests were sent or `duration_s` passed. Inputs are taken in order, cycling."""
    outcomes: list[Outcome] = []
    issued = 0
    started = time.perf_counter()
    end = started + duration_s if duration_s else float("inf")

    async def client() -> None:
        nonlocal issued
        while time.perf_counter() < end and (count is None or issued < count):
            text = texts[issued % len(texts)]
            issued += 1
            outcomes.append(await _one(call, text))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


async def open_loop(
    call: Call, texts: Sequence[str], rate: float, duration_s: float | None, count: int | None, seed: int = 0
) -> tuple[list[Outcome], float]:
    """Requests arriving as a Poisson process of `rate` per second, whatever the answers do."""
    rng = random.Random(seed)
    tasks: list[asyncio.Task] = []
    started = time.perf_counter()
    end = started + duration_s if duration_s else float("inf")
    next_at = started
    while time.perf_counter() < end and (count is None or len(tasks) < count):
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        tasks.append(asyncio.create_task(_one(call, texts[len(tasks) % len(texts)])))
        next_at += rng.expovariate(rate)
    outcomes = list(await asyncio.gather(*tasks))
    return outcomes, time.perf_counter() - started


def _percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def summarize(outcomes: list[Outcome], wall_s: float) -> dict:
    ok = [o for o in outcomes if o.code == "OK"]
    latencies = [o.latency_s for o in ok]
    ttfts = [o.ttft_s for o in ok if o.ttft_s is not None]
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(len(ok) / wall_s, 2),
        "tokens_per_s": round(sum(o.tokens for o in ok) / wall_s, 1),
        "words_per_s": round(sum(o.words for o in ok) / wall_s, 1),
        "latency_ms": {f"p{q}": _percentile_ms(latencies, q) for q in (50, 95, 99)},
        "ttft_ms": {f"p{q}": _percentile_ms(ttfts, q) for q in (50, 95, 99)} if ttfts else None,
        "errors": dict(Counter(o.code for o in outcomes if o.code != "OK")),
    }
