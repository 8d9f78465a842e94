"""A real bundle for the scheduler and runner tests, and the real runner with a test gate.

The bundle is the shipped default (s2s/bundles/dates/1) when present; otherwise a small model is
exported once per session with the export package (needs torch; skipped with a reason without it).
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import threading
from pathlib import Path

import pytest

from engine.sessions import Runner, StepOutput
from s2s.bundle import DEFAULT_BUNDLE_DIR, MANIFEST, Bundle, load_bundle


@functools.cache
def _exported_bundle_dir() -> Path:
    pytest.importorskip("torch", reason="exporting a test bundle needs torch (pip install .[train])")
    from export.testing import export_tiny_bundle

    return export_tiny_bundle(Path(tempfile.mkdtemp(prefix="s2s-sched-bundle-")))


def load_test_bundle() -> Bundle:
    if (DEFAULT_BUNDLE_DIR / MANIFEST).is_file():
        return load_bundle(DEFAULT_BUNDLE_DIR)
    return load_bundle(_exported_bundle_dir())


class GatedRunner(Runner):
    """The real runner, plus: a gate the test closes to hold the decode loop inside `step`, and a
    log of the request keys and row count of every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self._blocked = threading.Event()
        self.reset()

    def reset(self) -> None:
        self.release()
        self.owners_per_step: list[set[int]] = []
        self.rows_per_step: list[int] = []

    def step(self, batch, k: int) -> StepOutput:
        self.owners_per_step.append(set(batch.row_owner.tolist()))
        self.rows_per_step.append(len(batch))
        if not self.gate.is_set():
            self._blocked.set()
            self.gate.wait()
        return super().step(batch, k)

    def hold(self) -> None:
        """The next step waits at the gate until `release`."""
        self.gate.clear()

    def release(self) -> None:
        self._blocked.clear()
        self.gate.set()

    async def wait_for_blocked(self, timeout: float = 10.0) -> None:
        """Until the decode loop sits at the closed gate."""
        async with asyncio.timeout(timeout):
            while not self._blocked.is_set():
                await asyncio.sleep(0.001)
