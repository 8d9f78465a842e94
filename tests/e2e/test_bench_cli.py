"""`s2s bench` as a process against real `s2s serve` subprocesses: the batching server (c) and the
same server with batching off (b served), on the same inputs, with the ratios between them.
Counts, not speed: nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from e2e_support import E2EModels


def test_bench_runs_the_served_per_request_baseline_beside_the_batching_server(
    models: E2EModels, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "s2s.cli", "bench", "--bundle", str(models.bundle), "--inputs", "dates",
        "--variants", "server-per-request,server", "--concurrency", "1,4", "--duration", "0",
        "--count", "12", "--rounds", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = {(r["variant"], r["level"]): r for r in json.loads(out.read_text())["summary"]}
    assert set(summary) == {(v, c) for v in ("server-per-request", "s2s-server") for c in (1, 4)}
    for row in summary.values():
        assert row["errors"] == 0 and row["tokens_per_s"] > 0, row
    assert summary[("server-per-request", 4)]["tokens_x_server-per-request"] == 1.0
    assert "tokens_x_server-per-request" in summary[("s2s-server", 4)]
    assert "| tokens/s ÷ (b served) |" in done.stdout
