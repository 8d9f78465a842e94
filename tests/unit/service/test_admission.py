"""service/admission.py: retry advice follows the admission rate; call slots count by kind."""

from __future__ import annotations

import pytest

from service.admission import CallLimits, CallSlots, RetryAdvice, RetryAdvisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _advisor(clock: Clock, jitter: float = 0.0) -> RetryAdvisor:
    return RetryAdvisor(RetryAdvice(window_s=2.0, jitter=jitter, line_share=1.0), clock=clock, rng=lambda: 1.0)


def test_with_nothing_admitted_lately_the_advice_is_the_floor() -> None:
    advisor = _advisor(Clock())
    assert advisor.refused(10) == RetryAdvice().floor_s


def test_refused_callers_are_given_turns_at_the_admission_rate() -> None:
    clock = Clock()
    advisor = _advisor(clock)
    advisor.admitted(200)  # 100 units/s over the 2 s window
    assert advisor.rate() == pytest.approx(100)
    waits = [advisor.refused(10) for _ in range(5)]
    # Each refusal of 10 units is the next slot of 0.1 s in the line.
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_the_line_empties_by_itself_once_its_turns_have_passed() -> None:
    clock = Clock()
    advisor = _advisor(clock)
    advisor.admitted(200)
    for _ in range(20):
        advisor.refused(10)  # the line now ends 2 s from now
    clock.now += 5.0
    advisor.admitted(200)
    # The next refused caller is first in line: one slot at today's rate, not the old line's end.
    assert advisor.refused(10) == pytest.approx(10 / advisor.rate())


def test_advice_is_capped_and_jittered() -> None:
    clock = Clock()
    advisor = RetryAdvisor(RetryAdvice(ceiling_s=1.0, jitter=0.2, line_share=1.0), clock=clock, rng=lambda: 0.0)
    advisor.admitted(2)  # 1 unit/s
    assert advisor.refused(0.5) == pytest.approx(0.5 * 0.8)  # the slot, moved by -20%
    assert advisor.refused(100) == 1.0


def test_slots_refuse_the_first_full_kind_and_give_back() -> None:
    slots = CallSlots(CallLimits(max_calls=2, max_streams=1, max_health_calls=1))
    assert slots.full(("calls", "streams")) is None
    slots.take(("calls", "streams"))
    full = slots.full(("calls", "streams"))
    assert full is not None and full[0] == "streams" and full[1] > 0
    assert slots.full(("calls",)) is None  # a unary call still has room
    slots.take(("calls",))
    assert slots.full(("calls",))[0] == "calls"
    assert slots.full(("health",)) is None  # probes have their own pool
    slots.give_back(("calls", "streams"))
    assert slots.full(("calls", "streams")) is None


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_streams"):
        CallLimits(max_streams=0)
