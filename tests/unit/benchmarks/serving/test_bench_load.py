"""The benchmark's load generator, summary and inputs (no timing is asserted, only counting)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from benchmarks.serving.inputs import tsv_test_split
from benchmarks.serving.load import Outcome, closed_loop, open_loop, summarize
from benchmarks.serving.run import _cpu_fields, combine, cpu_seconds, format_table


class _Refused(Exception):
    def code(self):
        class _Code:
            name = "RESOURCE_EXHAUSTED"

        return _Code()


async def test_closed_loop_sends_count_requests_with_at_most_concurrency_in_flight():
    in_flight, peak, seen = 0, 0, []

    async def call(text):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(text)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return 3, 2, None

    outcomes, wall = await closed_loop(call, ["a", "b", "c"], concurrency=4, duration_s=None, count=10)
    assert len(outcomes) == 10 and peak == 4 and wall > 0
    assert seen[:6] == ["a", "b", "c", "a", "b", "c"]  # inputs in order, cycling
    assert all(o.code == "OK" and o.tokens == 3 for o in outcomes)


async def test_errors_are_counted_by_status_code_name():
    calls = 0

    async def call(text):
        nonlocal calls
        calls += 1
        if calls % 2:
            raise _Refused()
        return 1, 1, 0.001

    outcomes, wall = await open_loop(call, ["x"], rate=2000, duration_s=None, count=6)
    summary = summarize(outcomes, wall)
    assert summary["requests"] == 6 and summary["ok"] == 3
    assert summary["errors"] == {"RESOURCE_EXHAUSTED": 3}
    assert summary["ttft_ms"]["p50"] == pytest.approx(1.0)


def test_summary_percentiles_and_rates():
    outcomes = [
        Outcome(latency_s=i / 1000, ttft_s=None, tokens=10, words=5, code="OK") for i in range(1, 101)
    ]
    summary = summarize(outcomes, wall_s=2.0)
    assert (
        summary["requests_per_s"] == 50 and summary["tokens_per_s"] == 500 and summary["words_per_s"] == 250
    )
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5)
    assert summary["latency_ms"]["p99"] == pytest.approx(99.01)
    assert summary["ttft_ms"] is None and summary["errors"] == {}


def test_combine_takes_medians_over_rounds_and_ratios_to_the_baselines():
    def run(variant, tokens, p99, round_index):
        latency = {"p50": 1, "p95": 1, "p99": p99}
        return {"variant": variant, "level": 64, "round": round_index, "requests_per_s": 1,
                "tokens_per_s": tokens, "words_per_s": 1, "latency_ms": latency, "ttft_ms": None,
                "errors": {}}  # fmt: skip

    runs = [run("ort-per-request", 100, 50, 0), run("ort-per-request", 300, 70, 1)]
    runs += [run("s2s-server", 1000, 40, 0), run("s2s-server", 1200, 30, 1)]
    summary = {r["variant"]: r for r in combine(runs)}
    assert summary["ort-per-request"]["tokens_per_s"] == 200
    assert summary["s2s-server"]["tokens_x_ort-per-request"] == 5.5
    assert summary["s2s-server"]["p99_x_ort-per-request"] == 0.58
    assert "| 64 | s2s-server | 1.0 | 1100.0 |" in format_table(list(summary.values()), open_loop=False)


def test_tsv_test_split_takes_every_twentieth_line_from_the_eighth(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"src {i}\ttgt {i}\tcredit\n" for i in range(60)), encoding="utf-8")
    assert tsv_test_split(path) == [("src 7", "tgt 7"), ("src 27", "tgt 27"), ("src 47", "tgt 47")]
    (tmp_path / "short.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no test-split lines"):
        tsv_test_split(tmp_path / "short.tsv")


class _ServerVariant:
    def __init__(self, pid):
        self.server_pid = pid


def test_cpu_seconds_adds_the_server_process_to_the_load_generator():
    # A real child that burns CPU, says so, then idles: its time must show in the variant's count.
    burn = "import time\nwhile time.process_time() < 0.6: pass\nprint('burnt', flush=True)\ntime.sleep(60)"
    burner = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert burner.stdout.readline() == "burnt\n"
        alone = cpu_seconds(object())  # in-process: this process only
        with_server = cpu_seconds(_ServerVariant(burner.pid))
    finally:
        burner.kill()
        burner.communicate()  # reap it and close its pipe
    assert alone is not None and with_server is not None
    assert alone[1] == 0.0  # in-process: no server to add
    assert with_server[1] > 0.3  # the child's ~0.6 s of CPU (ticks of 10 ms, a loaded host)
    assert with_server[0] - alone[0] < 0.3  # and none of it counted as ours
    assert cpu_seconds(_ServerVariant(2**22 + 12345)) is None  # no such process: unknown, not 0
    assert cpu_seconds(_ServerVariant(None)) is None  # a server we did not start: unknown
    assert cpu_seconds(object())[1] == 0.0  # an in-process variant has no server to add


def test_cpu_per_request_is_reported_per_answered_request_and_in_the_table():
    fields = _cpu_fields((10.0, 5.0), (11.5, 5.5), ok=1000, wall_s=4.0)
    assert fields == {"cpu_ms_per_request": 2.0, "server_cpu_ms_per_request": 0.5, "cores_busy": 0.5}
    assert _cpu_fields(None, (1.0, 0.0), 1000, 4.0)["cpu_ms_per_request"] is None
    assert _cpu_fields((0.0, 0.0), (1.0, 0.0), 0, 4.0)["cores_busy"] is None  # nothing answered
    row = {"variant": "grpc-floor", "level": 64, "round": 0, "requests_per_s": 1, "tokens_per_s": 1,
           "words_per_s": 1, "latency_ms": {"p50": 1, "p95": 1, "p99": 1}, "ttft_ms": None, "errors": {},
           "cpu_ms_per_request": 0.7, "cores_busy": 1.9}  # fmt: skip
    [summary] = combine([row, {**row, "round": 1, "cpu_ms_per_request": 0.9}])
    assert summary["cpu_ms_per_request"] == 0.8 and summary["cores_busy"] == 1.9
    assert format_table([summary], open_loop=False).rstrip().endswith("| 0.8 | 1.9 |")
