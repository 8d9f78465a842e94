"""How long a refused client should wait before it tries again (the RetryInfo a refusal carries).

A fixed hint fails both ways under overload: too short and refused clients come back at once, so
refusals eat the cores that should decode (an outside test saw throughput fall 40-46% at 8x
overload); too long and the server idles once the burst is over. Here refused callers are given
turns: each refusal takes the next free slot of a virtual line that advances at a share of the
rate work has lately been admitted, so refused clients come back spread out, and the line empties
by itself when the burst ends (a slot in the past is no slot).

Why a share and not the whole rate: a closed-loop client that was just served calls again at
once, and at overload there is room for it only if the returning clients leave some. Returns at
the full admission rate would refuse about one call per call served (each refusal costs a round
trip of CPU: 15-30% of a short call's); at a quarter of it, about one in four, and the server
still never idles while the line is long, because the clients it serves keep it full.

Plain arithmetic on the event loop's thread; nothing here knows gRPC or the scheduler.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryAdvice:
    floor_s: float = 0.005  # never advise less: a refusal already cost a round trip
    ceiling_s: float = 10.0  # never more: a client should learn soon that the burst is over
    window_s: float = 2.0  # time constant of the admission rate the line advances at
    line_share: float = 0.25  # the line advances at this share of the admission rate (see above)
    jitter: float = 0.2  # each turn is moved by up to this fraction of its wait, either way


class RetryAdvisor:
    """A decayed rate of admitted work (in any unit: calls, decoder rows) and a virtual line."""

    def __init__(self, advice: RetryAdvice = RetryAdvice(), clock=time.monotonic, rng=random.random):
        self.advice = advice
        self._clock = clock
        self._rng = rng
        self._admitted = 0.0  # units admitted, decayed with window_s
        self._since = clock()
        self._line_ends = 0.0  # clock time at which the last refused caller's turn comes

    def admitted(self, units: float) -> None:
        now = self._clock()
        self._admitted = self._admitted * math.exp(-(now - self._since) / self.advice.window_s) + units
        self._since = now

    def rate(self) -> float:
        """Units admitted per second lately."""
        decay = math.exp(-(self._clock() - self._since) / self.advice.window_s)
        return self._admitted * decay / self.advice.window_s

    def refused(self, units: float) -> float:
        """Seconds the caller refused for `units` should wait: its turn in the line."""
        a, now = self.advice, self._clock()
        rate = self.rate()
        if rate <= 0:  # nothing admitted lately: the blockage is not throughput
            return a.floor_s
        self._line_ends = max(self._line_ends, now) + units / (rate * a.line_share)
        wait = self._line_ends - now
        wait *= 1 + a.jitter * (2 * self._rng() - 1)
        return min(a.ceiling_s, max(a.floor_s, wait))


@dataclass(frozen=True)
class CallLimits:
    """Calls in progress at once, by kind; beyond a limit a call is refused before its request is
    read (RESOURCE_EXHAUSTED with RetryInfo), so a flood costs a refusal each, not a backlog."""

    max_calls: int = 256  # Translator (streams included), Admin and reflection calls
    max_streams: int = 64  # TranslateStream calls (each also holds one of max_calls)
    max_health_calls: int = 64  # health Check/Watch: a pool of their own, so probes never wait behind work

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_streams", "max_health_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class CallSlots:
    """Counts calls in progress by kind ("calls", "streams", "health") against CallLimits."""

    def __init__(self, limits: CallLimits, advice: RetryAdvice = RetryAdvice()):
        self.limits = {
            "calls": limits.max_calls,
            "streams": limits.max_streams,
            "health": limits.max_health_calls,
        }
        self.in_progress = dict.fromkeys(self.limits, 0)
        self._advisors = {kind: RetryAdvisor(advice) for kind in self.limits}

    def full(self, kinds: tuple[str, ...]) -> tuple[str, float] | None:
        """(the first kind with no room, retry advice) or None when every kind has room."""
        for kind in kinds:
            if self.in_progress[kind] >= self.limits[kind]:
                return kind, self._advisors[kind].refused(1)
        return None

    def take(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.in_progress[kind] += 1
            self._advisors[kind].admitted(1)

    def give_back(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.in_progress[kind] -= 1
