"""Fixtures of the benchmark's unit tests: the shipped default bundle (always in the repository)."""

from __future__ import annotations

import pytest

from s2s.bundle import DEFAULT_BUNDLE_DIR, load_bundle


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_BUNDLE_DIR)
