"""A real Prometheus server on loopback scrapes a real `s2s serve` under a short load; the query
API must return a non-zero request rate and a p99 from the latency histograms, and the shipped
alert and recording rules must evaluate against the real series (issue 6)."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from local_server import VENV_BIN, ServerProcess, free_port, wait_serving

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SOURCES = ["Tuesday, 10 July 2007", "3 March 1999", "10 juil. 2007", "Dienstag, 10. Juli 2007"]
LOAD_SECONDS = 6.0  # bounded: the load stops by itself
LOAD_WORKERS = 4
MAX_CALLS = 2000
SCRAPE_INTERVAL = "1s"
RATE_WINDOW = "20s"  # covers the whole load, many scrapes
TRANSLATE = 'job="s2s", grpc_service="s2s.v1.Translator", grpc_method="Translate"'
REQUEST_RATE = f'sum(rate(grpc_server_handled_total{{{TRANSLATE}, grpc_code="OK"}}[{RATE_WINDOW}]))'


def p99_query(histogram: str, selector: str) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({histogram}_bucket{{{selector}}}[{RATE_WINDOW}])))"


def _prometheus_config(tmp_path: Path, metrics_port: int) -> Path:
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "s2s", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _api(base: str, path: str, **params: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def _scalar(base: str, query: str) -> float | None:
    """The single value of an instant query, or None when it returns no series."""
    result = _api(base, "/api/v1/query", query=query)["result"]
    assert len(result) <= 1, f"{query} returned {len(result)} series"
    return float(result[0]["value"][1]) if result else None


def _wait(predicate, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, AssertionError):
            value = None  # not up yet
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def _load(port: int) -> int:
    """LOAD_WORKERS concurrent clients calling Translate for LOAD_SECONDS; the calls made."""
    calls = 0
    stop_at = time.monotonic() + LOAD_SECONDS
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TranslatorStub(channel)

        async def worker(offset: int) -> None:
            nonlocal calls
            i = offset
            while time.monotonic() < stop_at and calls < MAX_CALLS:
                request = pb.TranslateRequest(texts=[SOURCES[i % len(SOURCES)]])
                response = await stub.Translate(request, timeout=30)
                assert response.results[0].hypotheses[0].text  # the model's quality is tested elsewhere
                calls += 1
                i += 1

        await asyncio.gather(*(worker(k) for k in range(LOAD_WORKERS)))
    return calls


def test_prometheus_reads_request_rate_and_p99_from_a_loaded_server(tmp_path: Path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not installed: run scripts/install_tools.sh")
    grpc_port, metrics_port, prometheus_port = free_port(), free_port(), free_port()
    serve = [str(VENV_BIN / "s2s"), "serve", "--host", "127.0.0.1", "--port", str(grpc_port),
             "--metrics-port", str(metrics_port), "--threads", "1"]  # fmt: skip
    base = f"http://127.0.0.1:{prometheus_port}"
    run_prometheus = [
        prometheus,
        f"--config.file={_prometheus_config(tmp_path, metrics_port)}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
    ]
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}

    with (
        ServerProcess(serve, env=env, cwd=tmp_path, log_path=tmp_path / "s2s.log") as server,
        ServerProcess(run_prometheus, env=env, cwd=tmp_path, log_path=tmp_path / "prom.log") as prom,
    ):
        wait_serving(server, grpc_port)
        _wait(lambda: _http_ok(f"{base}/-/ready"), "Prometheus ready")
        _wait(lambda: _scalar(base, 'up{job="s2s"}') == 1, "the s2s target to be up")

        calls = asyncio.run(_load(grpc_port))
        assert calls > 0
        time.sleep(2)  # one more scrape after the last call

        rate = _wait(lambda: _scalar(base, REQUEST_RATE), "a non-zero request rate")
        assert 0 < rate < calls, (rate, calls)
        p99 = _scalar(base, p99_query("grpc_server_handling_seconds", TRANSLATE))
        assert p99 is not None and math.isfinite(p99) and 0 < p99 < 30, p99
        decoder_p99 = _scalar(base, p99_query("s2s_step_duration_seconds", 'job="s2s", step="decoder"'))
        assert decoder_p99 is not None and 0 < decoder_p99 < 1, decoder_p99
        tokens = _scalar(base, f'sum(increase(s2s_output_tokens_total{{job="s2s"}}[{RATE_WINDOW}]))')
        assert tokens and tokens > 0

        # The shipped rules load and evaluate against the real series without errors.
        groups = _api(base, "/api/v1/rules")["groups"]
        assert {g["name"] for g in groups} == {"s2s-recording", "s2s-alerts"}
        bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
        assert not bad, bad
        assert _wait(lambda: _scalar(base, "s2s:inflight_requests") is not None, "the recording rule")
        prom.assert_running()
        server.assert_running()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
