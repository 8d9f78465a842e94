"""Fixtures of the engine's tests: the shipped default bundle (always in the repository) in real
ONNX Runtime sessions. Module scope: each test module gets its own."""

from __future__ import annotations

import pytest

from engine.sessions import Runner, RunnerConfig
from s2s.bundle import DEFAULT_BUNDLE_DIR, load_bundle


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_BUNDLE_DIR)


@pytest.fixture(scope="module")
def runner(bundle):
    # One intra-op thread: the numbers must not depend on how a machine splits the work.
    return Runner.from_bundle(bundle, RunnerConfig(intra_op_threads=1, warmup_rows=(1, 3)))
