"""Metrics of a real `s2s serve` process: scrape, send real requests, scrape again; every gRPC and
decoder counter and histogram must move by exactly what those requests imply (issue 6)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import grpc
import pytest
from local_server import VENV_BIN, ServerProcess, free_port, sample, scrape_settled, wait_serving

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

TEXTS = ["Tuesday, 10 July 2007", "3 March 1999", "Dienstag, 10. Juli 2007"]
STREAM_TEXT = "10 juil. 2007"
SERVICE = "s2s.v1.Translator"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(gRPC port, metrics URL) of one `s2s serve` process with the shipped model."""
    tmp_path = tmp_path_factory.mktemp("metrics-e2e")
    grpc_port, metrics_port = free_port(), free_port()
    command = [str(VENV_BIN / "s2s"), "serve", "--host", "127.0.0.1", "--port", str(grpc_port),
               "--metrics-port", str(metrics_port), "--threads", "1"]  # fmt: skip
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    with ServerProcess(command, env=env, cwd=tmp_path, log_path=tmp_path / "s2s.log") as server:
        wait_serving(server, grpc_port)
        yield grpc_port, f"http://127.0.0.1:{metrics_port}/metrics"


def test_counters_and_histograms_move_by_what_real_requests_imply(served):
    grpc_port, metrics_url = served
    before = scrape_settled(metrics_url)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.TranslatorStub(channel)
        results = list(stub.Translate(pb.TranslateRequest(texts=TEXTS), timeout=30).results)
        stream_messages = list(stub.TranslateStream(pb.TranslateStreamRequest(text=STREAM_TEXT), timeout=30))
        with pytest.raises(grpc.RpcError) as invalid:
            stub.Translate(pb.TranslateRequest(texts=[]), timeout=30)
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    results.append(stream_messages[-1].result.result)
    after = scrape_settled(metrics_url)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    def grpc_delta(name: str, method: str, **labels: str) -> float:
        return delta(name, grpc_service=SERVICE, grpc_method=method, **labels)

    # gRPC: two unary calls (one refused by validation) and one stream.
    assert grpc_delta("grpc_server_started_total", "Translate", grpc_type="unary") == 2
    assert grpc_delta("grpc_server_handled_total", "Translate", grpc_code="OK") == 1
    assert grpc_delta("grpc_server_handled_total", "Translate", grpc_code="INVALID_ARGUMENT") == 1
    assert grpc_delta("grpc_server_msg_received_total", "Translate") == 2
    assert grpc_delta("grpc_server_msg_sent_total", "Translate") == 1
    assert grpc_delta("grpc_server_handling_seconds_count", "Translate") == 2
    assert grpc_delta("grpc_server_started_total", "TranslateStream", grpc_type="server_stream") == 1
    assert grpc_delta("grpc_server_handled_total", "TranslateStream", grpc_code="OK") == 1
    assert grpc_delta("grpc_server_msg_sent_total", "TranslateStream") == len(stream_messages)

    # Decoder: four texts reached the scheduler (the empty request never did).
    best = [r.hypotheses[0] for r in results]
    output_tokens = sum(len(h.token_ids) for h in best)
    n = len(results)
    assert delta("s2s_requests_received_total") == n
    assert (
        delta("s2s_requests_finished_total", reason="eos")
        + delta("s2s_requests_finished_total", reason="max_length")
        == n
    )
    assert delta("s2s_requests_rejected_total") == 0
    assert delta("s2s_output_tokens_total") == output_tokens
    assert delta("s2s_source_tokens_count") == n
    assert delta("s2s_source_tokens_sum") == sum(len(r.source_tokens) for r in results)
    assert delta("s2s_output_length_tokens_sum") == output_tokens
    for histogram in ("queue_wait_seconds", "time_to_first_token_seconds", "request_duration_seconds",
                      "time_per_output_token_seconds"):  # fmt: skip
        assert delta(f"s2s_{histogram}_count") == n, histogram
        assert delta(f"s2s_{histogram}_bucket", le="+Inf") == n, histogram
    # Each source is encoded once; a greedy request holds one decoder row per step, and it takes
    # one step per output token plus the step that picks the end token.
    assert delta("s2s_step_rows_sum", step="encoder") == n
    eos_steps = sum(len(h.token_ids) + (h.finish_reason == pb.FINISH_REASON_EOS) for h in best)
    assert delta("s2s_step_rows_sum", step="decoder") == eos_steps
    assert delta("s2s_step_duration_seconds_count", step="decoder") >= max(len(h.token_ids) for h in best)
    assert sample(after, "s2s_running_requests") == 0 and sample(after, "s2s_queued_requests") == 0


@pytest.mark.tools
def test_real_exposition_passes_promtool_check_metrics(served):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: run scripts/install_tools.sh")
    _, metrics_url = served
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
