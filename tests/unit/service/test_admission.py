"""service/admission.py: retry advice follows the admission rate; call slots count by kind."""

from __future__ import annotations

import pytest

from service.admission import CallLimits, CallSlots, RetryAdvice, RetryAdvisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _advisor(clock: Clock, jitter: float = 0.0, quiet_s: float = 0.0) -> RetryAdvisor:
    return RetryAdvisor(
        RetryAdvice(window_s=2.0, jitter=jitter, line_share=1.0, quiet_s=quiet_s),
        clock=clock,
        rng=lambda: 1.0,
    )


def test_with_few_admissions_lately_the_advice_is_the_cold_one() -> None:
    advisor = _advisor(Clock())
    assert advisor.refused(10) == RetryAdvice().cold_s
    advisor.admitted(4)  # under min_evidence (8) in the window
    assert advisor.refused(1) == RetryAdvice().cold_s


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
    advisor = RetryAdvisor(
        RetryAdvice(ceiling_s=1.0, jitter=0.2, line_share=1.0), clock=clock, rng=lambda: 0.0
    )
    advisor.admitted(20)  # 10 calls/s
    assert advisor.refused(1) == pytest.approx(0.1 * 0.8)  # the slot, moved by -20%
    assert advisor.refused(1000) == 1.0


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


def test_an_admission_into_a_half_empty_queue_restarts_the_line() -> None:
    clock = Clock()
    advisor = _advisor(clock)
    advisor.admitted(200)
    for _ in range(10):
        advisor.refused(10)  # the line ends 1 s from now
    advisor.admitted(10, fill=0.9)  # still busy: the line stands
    assert advisor.refused(10) > 1.0
    advisor.admitted(10, fill=0.2)  # room to spare: nobody needs to wait
    assert advisor.refused(10) == pytest.approx(10 / advisor.capacity())


def test_with_a_quiet_period_the_line_restarts_only_once_refusals_stopped() -> None:
    clock = Clock()
    advisor = _advisor(clock, quiet_s=0.25)
    advisor.admitted(200)
    for _ in range(10):
        advisor.refused(10)  # the line ends 1 s from now
    # Room for a moment while callers are still being turned away (a step finished many calls at
    # once, at overload): the line stands, or its sleepers' places would go to the next refused.
    advisor.admitted(10, fill=0.2)
    assert advisor.refused(10) > 1.0
    clock.now += 0.25  # nobody refused for a while, and room to spare: no line
    advisor.admitted(10, fill=0.2)
    assert advisor.refused(10) == pytest.approx(10 / advisor.capacity())  # first in a new line


def test_advice_follows_the_capacity_seen_not_the_rate_of_a_server_whose_callers_all_sleep() -> None:
    clock = Clock()
    advisor = _advisor(clock)
    advisor.admitted(200)  # 100 units/s while busy
    clock.now += 10.0  # everyone asleep: the admission rate decays to almost nothing
    assert advisor.rate() < 1.0
    assert advisor.capacity() == pytest.approx(100 * 2.718281828 ** (-10 / 30), rel=1e-6)
    assert advisor.refused(10) == pytest.approx(10 / advisor.capacity())  # not 10 / rate: ~15 s
