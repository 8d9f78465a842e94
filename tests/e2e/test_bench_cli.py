"""`s2s bench` as a process against real `s2s serve` subprocesses: the batching server (c), the
same server with batching off (b served), a hand-written worker-pool server and the gRPC floor (a
server that decodes nothing), on the same inputs, with the ratios between them and each one's
CPU per request. Counts, not speed: nothing here is timed."""

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
        "--variants", "server-per-request,server,grpc-floor,server-pool", "--concurrency", "1,4",
        "--duration", "0", "--count", "12", "--rounds", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = {(r["variant"], r["level"]): r for r in json.loads(out.read_text())["summary"]}
    served = ("server-per-request", "s2s-server", "grpc-floor", "server-pool")
    assert set(summary) == {(v, c) for v in served for c in (1, 4)}
    for row in summary.values():
        assert row["errors"] == 0 and row["tokens_per_s"] > 0, row
        # the load generator's CPU plus the server subprocess's, per answered request
        assert row["cpu_ms_per_request"] > row["server_cpu_ms_per_request"] >= 0, row
        assert row["cores_busy"] > 0, row
    # /proc counts 10 ms ticks: the floor's 24 requests may round to none; decoding ones do not.
    for variant in ("server-per-request", "s2s-server", "server-pool"):
        assert sum(summary[(variant, c)]["server_cpu_ms_per_request"] for c in (1, 4)) > 0, variant
    assert summary[("server-per-request", 4)]["tokens_x_server-per-request"] == 1.0
    assert "tokens_x_server-per-request" in summary[("s2s-server", 4)]
    assert "| tokens/s ÷ (b served) |" in done.stdout and "| CPU ms/req | cores |" in done.stdout
