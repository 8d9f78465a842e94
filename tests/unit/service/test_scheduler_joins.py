"""When waiting requests join a busy batch (SchedulerConfig.admit_min_rows, admit_max_wait_ms).

A join costs an encoder run and a copy of the batch whatever its size, so while the batch is more
than half full newcomers join in groups. Steps are let through one at a time with the test gate
of `GatedRunner` (the real runner, real sessions): timing is controlled, never measured.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from service.handle import DecodeRequest
from service.scheduler import Scheduler, SchedulerConfig

SOURCE = [5, 6, 7, 8, 9, 10]


async def _one_step(runner) -> None:
    """Let the held decode loop run one step and stop at the gate again."""
    runner.release()
    runner.hold()
    await runner.wait_for_blocked()


@contextlib.asynccontextmanager
async def _busy_scheduler(runner, running_beam: int = 5, **config):
    """A scheduler of 8 rows held at the gate with a beam request running (5 of 8 rows: more
    than half full); stopped afterwards even when the test fails, so no decode loop outlives it
    on the shared runner."""
    runner.reset()
    scheduler = Scheduler(runner, SchedulerConfig(max_rows=8, max_queue=8, max_beam=5, **config))
    await scheduler.start()
    runner.hold()
    running = scheduler.submit(DecodeRequest(SOURCE, beam_size=running_beam, max_len=200))
    try:
        await runner.wait_for_blocked()
        yield scheduler, running
    finally:
        runner.release()
        running.cancel()
        await scheduler.stop()


async def _results(handles) -> None:
    for handle in handles:
        assert (await handle.result()).hypotheses


def _first_step_of(runner, key: int) -> int:
    return next(i for i, owners in enumerate(runner.owners_per_step) if key in owners)


@pytest.mark.parametrize(("min_rows", "joined_together"), [(3, True), (1, False)])
async def test_newcomers_to_a_busy_batch_join_in_groups(runner, min_rows, joined_together):
    async with _busy_scheduler(runner, admit_min_rows=min_rows, admit_max_wait_ms=60_000) as (
        scheduler,
        running,
    ):
        singles = []
        for _ in range(3):  # one greedy request arrives per step
            singles.append(scheduler.submit(DecodeRequest(SOURCE, max_len=3)))
            await _one_step(runner)
            assert not running.done, (
                "the beam-5 request must keep the batch busy for the test to mean anything"
            )
        first_steps = [_first_step_of(runner, h.key) for h in singles]
        if joined_together:  # the first two waited for the third: 3 rows, one encoder run
            assert first_steps[0] == first_steps[1] == first_steps[2]
        else:  # each joined at the first step after it arrived
            assert first_steps[0] < first_steps[1] < first_steps[2]
        runner.release()
        await _results(singles)


async def test_a_newcomer_waits_no_longer_than_admit_max_wait_ms(runner):
    async with _busy_scheduler(runner, admit_min_rows=3, admit_max_wait_ms=20) as (scheduler, running):
        single = scheduler.submit(DecodeRequest(SOURCE, max_len=3))
        await _one_step(runner)  # 1 row waiting, under 3: it does not join yet
        assert all(single.key not in owners for owners in runner.owners_per_step)
        await asyncio.sleep(0.05)  # the gate holds the loop meanwhile: no step runs
        await _one_step(runner)
        assert not running.done
        assert single.key in runner.owners_per_step[-1]
        runner.release()
        await _results([single])


async def test_a_half_full_batch_takes_newcomers_at_once(runner):
    async with _busy_scheduler(runner, running_beam=4, admit_max_wait_ms=60_000) as (scheduler, running):
        single = scheduler.submit(DecodeRequest(SOURCE, max_len=3))  # 4 of 8 rows run: half full
        await _one_step(runner)
        assert single.key in runner.owners_per_step[-1]
        runner.release()
        await _results([single])


def test_join_settings_are_checked():
    with pytest.raises(ValueError, match="admit_min_rows"):
        SchedulerConfig(admit_min_rows=0)
    with pytest.raises(ValueError, match="admit_max_wait_ms"):
        SchedulerConfig(admit_max_wait_ms=-1)
