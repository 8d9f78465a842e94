"""`s2s export` in real processes: its stages as a progress bar on a terminal only, and torch's
known-harmless notes about packed RNNs silenced while other output on stderr still shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import ROOT, glued_log_records, s2s, s2s_in_terminal, train_tiny

BAR = re.compile(r"export: +\d+%")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny") / "dates")


def test_export_shows_its_stages_on_a_terminal(checkpoint: Path, tmp_path: Path) -> None:
    code, output = s2s_in_terminal("export", checkpoint, "--out", tmp_path, "--quantize", "int8")
    assert code == 0, output[-3000:]
    assert BAR.search(output), output[-3000:]
    for stage in ("ONNX graphs", "validation", "int8", "optimised graphs", "manifest"):
        assert stage in output, stage
    assert "fp32 graphs valid" in output and glued_log_records(output) == []
    assert (tmp_path / "dates" / "1" / "manifest.json").is_file()


def test_export_with_pipes_or_no_progress_draws_no_bar_and_no_packed_rnn_notes(
    checkpoint: Path, tmp_path: Path
) -> None:
    done = s2s("export", checkpoint, "--out", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "dates" / "1")
    assert not BAR.search(done.stderr) and "\r" not in done.stderr
    assert "shape inference" not in done.stderr and "PackPadded" not in done.stderr, done.stderr
    assert "fp32 graphs valid" in done.stderr  # the log still shows
    code, output = s2s_in_terminal("export", checkpoint, "--out", tmp_path, "--force", "--no-progress")
    assert code == 0 and not BAR.search(output), output[-3000:]


def test_the_stderr_filter_drops_only_the_packed_rnn_notes() -> None:
    # What C++ code writes to file descriptor 2, and a Python warning, inside the filter.
    code = r"""
import os, sys, warnings
from export.convert import PACKED_RNN_NOTE, native_stderr_without
with native_stderr_without(PACKED_RNN_NOTE):
    os.write(2, b"[W x.cpp] Warning: The shape inference of prim::PackPadded type is missing\n")
    os.write(2, b"native: something else\n")
    os.write(2, b"[W x.cpp] Warning: The shape inference of prim::PadPacked type is missing\n")
    warnings.warn("a Python warning")
print("after", file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "prim::" not in done.stderr
    kept = [line for line in done.stderr.splitlines() if line.strip()]
    assert kept[0] == "native: something else" and "a Python warning" in kept[1] and kept[-1] == "after", kept
