"""service/registry.py: which directories are bundles, and which version is the newest."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2s.bundle import DEFAULT_BUNDLE_DIR, MANIFEST, BundleError
from service.registry import _version_key, resolve_bundle_dirs


def test_versions_compare_numerically_then_as_text() -> None:
    versions = ["9", "10", "2", "1.10", "1.9", "1.9-rc1"]
    assert sorted(versions, key=_version_key) == ["1.9", "1.9-rc1", "1.10", "2", "9", "10"]


def test_no_paths_means_the_shipped_bundle() -> None:
    if not (DEFAULT_BUNDLE_DIR / MANIFEST).is_file():
        with pytest.raises(BundleError, match="default bundle"):
            resolve_bundle_dirs(())
    else:
        assert resolve_bundle_dirs(()) == [DEFAULT_BUNDLE_DIR]


def test_a_bundle_dir_or_a_name_version_tree(tmp_path: Path) -> None:
    for name, version in [("a", "1"), ("a", "2"), ("b", "1")]:
        (tmp_path / name / version).mkdir(parents=True)
        (tmp_path / name / version / MANIFEST).write_text("{}")
    single = tmp_path / "a" / "2"
    assert resolve_bundle_dirs([single]) == [single]
    assert resolve_bundle_dirs([tmp_path]) == [
        tmp_path / "a" / "1",
        tmp_path / "a" / "2",
        tmp_path / "b" / "1",
    ]


def test_missing_and_empty_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        resolve_bundle_dirs([tmp_path / "nope"])
    with pytest.raises(BundleError, match="holds no bundle"):
        resolve_bundle_dirs([tmp_path])
