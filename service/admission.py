"""How long a refused client should wait before it tries again (the RetryInfo a refusal carries).

A fixed hint fails both ways under overload: too short and refused clients come back at once, so
refusals eat the cores that should decode (an outside test saw throughput fall 40-46% at 8x
overload); too long and the server idles once the burst is over. Here refused callers are given
turns: each refusal takes the next slot of a virtual line, slots spaced by what the server can
admit, so refused clients come back spread out; a slot in the past is no slot, so the line
empties by itself when the burst ends. Turns are counted in calls, whatever their size: a large
call's turn in rows would push every small call behind it for seconds.

What the server can admit is the peak admission rate seen lately, not the current one: once
everyone waiting is asleep, the current rate falls, and advice that followed it would tell the
next caller to sleep longer while the server idles.

The line advances at a share of that capacity: a quarter for the decode queue, a tenth for the
bounds on calls in progress (SLOTS_ADVICE). A closed-loop client that was just served calls
again at once; at overload it finds room only if the returning ones leave some. Turns at the
full rate would refuse about one call per call served (each refusal costs a round trip of CPU,
15-30% of a short call's, and in a Python server the dispatch of calls is itself the scarce
part); at a quarter, about one in four; at a tenth, one in ten, and the server does not idle
while the line is long, because the clients it serves keep it busy. The call bounds are what
refuses at 10x overload of small calls, where a quarter's refusals were still enough to back
calls up in front of the event loop (docs/reliability.md); the queue refuses calls too big for
the rows left, where a tenth's longer turns cost a mixed soak 12% of its answers. This favours
the callers already being served over those asleep in the line, as adaptive-LIFO servers do:
under overload, bounded latency for the calls accepted comes before fairness between callers.

When the callers served do not keep the server busy (few clients, large calls), the line was too
long: once work is admitted into a bound less than half full, the line starts again. For the
bounds on calls in progress, only if nobody has been refused for `quiet_s` as well: their fill
swings at overload, a step that finishes many calls at once emptying half the slots for a moment
while hundreds of callers are still asleep in the line, and restarting it then handed the next
refusals turns of a few milliseconds, which came straight back (measured with the engine in its
own process, whose results arrive a step at a time). Not for the decode queue: its refusals are
of calls too big for the rows left, a line of them must restart as soon as rows free up, or the
server idles while they sleep (measured: with it, a mixed soak answered 14% fewer calls).

Plain arithmetic on the event loop's thread; nothing here knows gRPC or the scheduler.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryAdvice:
    floor_s: float = 0.005  # never advise less: a refusal already cost a round trip
    # Never more. Long, because at 10x overload nine callers in ten must be asleep rather than
    # queued in front of the server; measured: 5 s left a standing backlog (docs/reliability.md).
    ceiling_s: float = 30.0
    window_s: float = 2.0  # time constant of the admission rate
    peak_window_s: float = 30.0  # how slowly the capacity estimate (the peak rate) forgets
    min_evidence: float = 8.0  # calls admitted lately before the capacity estimate is trusted
    cold_s: float = 0.05  # the advice until then
    line_share: float = 0.25  # the line advances at this share of the capacity (see above)
    # The line restarts only after this long without a refusal (see above). 0 for the decode
    # queue, whose turns are long only while rows wait; call slots use SLOTS_ADVICE.
    quiet_s: float = 0.0
    jitter: float = 0.2  # each turn is moved by up to this fraction of its wait, either way


class RetryAdvisor:
    """A decayed rate of admitted calls, its recent peak, and a virtual line of refused ones."""

    def __init__(self, advice: RetryAdvice = RetryAdvice(), clock=time.monotonic, rng=random.random):
        self.advice = advice
        self._clock = clock
        self._rng = rng
        self._admitted = 0.0  # units admitted, decayed with window_s
        self._peak = 0.0  # peak of rate(), decayed with peak_window_s
        self._since = clock()
        self._line_ends = 0.0  # clock time at which the last refused caller's turn comes
        self._last_refusal = -math.inf  # clock time of the last refusal

    def _age(self) -> None:
        now = self._clock()
        elapsed, self._since = now - self._since, now
        self._admitted *= math.exp(-elapsed / self.advice.window_s)
        self._peak *= math.exp(-elapsed / self.advice.peak_window_s)

    def admitted(self, units: float = 1.0, fill: float = 1.0) -> None:
        """Count `units` admitted (calls); `fill` is how full the bounded thing is after it."""
        self._age()
        self._admitted += units
        self._peak = max(self._peak, self._admitted / self.advice.window_s)
        if fill < 0.5 and self._since - self._last_refusal >= self.advice.quiet_s:
            self._line_ends = self._since  # room to spare and nobody turned away: no line needed

    def rate(self) -> float:
        """Units admitted per second lately."""
        self._age()
        return self._admitted / self.advice.window_s

    def capacity(self) -> float:
        """Units per second the server has lately shown it admits when busy."""
        self._age()
        return self._peak

    def refused(self, units: float = 1.0) -> float:
        """Seconds the caller refused should wait: its turn in the line."""
        a, capacity = self.advice, self.capacity()
        now = self._last_refusal = self._since
        if capacity * a.window_s < a.min_evidence:  # too few admissions to tell a rate
            return a.cold_s
        self._line_ends = max(self._line_ends, now) + units / (capacity * a.line_share)
        wait = self._line_ends - now
        wait *= 1 + a.jitter * (2 * self._rng() - 1)
        return min(a.ceiling_s, max(a.floor_s, wait))


@dataclass(frozen=True)
class CallLimits:
    """Calls in progress at once, by kind; beyond a limit a call is refused before its request is
    read (RESOURCE_EXHAUSTED with RetryInfo), so a flood costs a refusal each, not a backlog."""

    max_calls: int = 256  # Translator (streams included), Admin and reflection calls
    max_streams: int = 64  # TranslateStream calls (each also holds one of max_calls and max_decoding)
    max_health_calls: int = 64  # health Check/Watch: a pool of their own, so probes never wait behind work
    # Translate and TranslateStream calls; 0 = the scheduler's max_rows (`for_rows`). Every such call
    # needs at least one decoder row, so more than a batch's rows of them can only wait: not in the
    # scheduler's queue, which is bounded, but in front of the event loop, unseen and unbounded,
    # where refused and accepted calls wait alike (measured at 10x overload: refusals p99 1.5 s at
    # 96 of them, 43 ms at 64; docs/reliability.md).
    max_decoding: int = 0

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_streams", "max_health_calls"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_decoding < 0:
            raise ValueError(f"max_decoding must be >= 0 (0 = max_rows), got {self.max_decoding}")

    def for_rows(self, max_rows: int) -> CallLimits:
        """These limits with max_decoding resolved (0 becomes the decoder's max_rows)."""
        return self if self.max_decoding else dataclasses.replace(self, max_decoding=max_rows)


# The advice for the bounds on calls in progress (see above): a slower line, and a quiet moment
# before it restarts, since a step that finishes many calls frees half the slots at once.
SLOTS_ADVICE = RetryAdvice(line_share=0.1, quiet_s=0.25)


class CallSlots:
    """Counts calls in progress by kind ("calls", "decoding", "streams", "health") against CallLimits."""

    def __init__(self, limits: CallLimits, advice: RetryAdvice = SLOTS_ADVICE):
        self.limits = {
            "calls": limits.max_calls,
            "decoding": limits.max_decoding or limits.max_calls,
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
            self._advisors[kind].admitted(1, self.in_progress[kind] / self.limits[kind])

    def give_back(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.in_progress[kind] -= 1
