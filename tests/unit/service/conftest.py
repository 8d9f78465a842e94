"""Fixtures shared by the scheduler, pool and runner tests: the real test bundle and the real
runner behind a test gate (sched_bundle.py). Module scope: each test module gets its own."""

from __future__ import annotations

import pytest
from sched_bundle import GatedRunner, load_test_bundle

from engine.sessions import RunnerConfig


@pytest.fixture(scope="module")
def bundle():
    return load_test_bundle()


@pytest.fixture(scope="module")
def runner(bundle):
    """The gated runner; test_runner.py overrides it with a plain one."""
    runner = GatedRunner.from_bundle(bundle, RunnerConfig(intra_op_threads=1, warmup_rows=(1,)))
    runner.warm_up()
    return runner
