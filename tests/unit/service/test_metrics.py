"""service/metrics.py against a real /metrics HTTP endpoint: scrape, act, scrape again."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s2s import __version__
from service.metrics import ServiceMetrics, start_metrics_server
from service.observer import NullObserver, SchedulerObserver

LABELS = {"model": "toy", "version": "3", "provider": "cpu"}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, f"GET {url} answered {response.status}"
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, frozenset(labels)): value} for a whole scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    key = (name, frozenset({**LABELS, **labels}.items()))
    assert key in scraped, f"no sample {name}{labels} in the scrape"
    return scraped[key]


@pytest.fixture
def service_metrics():
    return ServiceMetrics(provider="cpu")


@pytest.fixture
def served(service_metrics):
    observer = service_metrics.model_observer(model="toy", version="3", bundle_sha="ab" * 32)
    server = start_metrics_server(service_metrics.registry, "127.0.0.1", 0)
    try:
        yield observer, server
    finally:
        server.close()


def test_port_zero_binds_a_free_port_and_serves_metrics(served):
    _, server = served
    assert server.port > 0
    text = scrape(server.url)
    assert "s2s_requests_received_total" in text


def test_every_counter_and_histogram_moves_by_what_the_observer_reported(served):
    observer, server = served
    before = samples(scrape(server.url))

    observer.request_queued(src_len=7)
    observer.request_queued(src_len=300)
    observer.request_rejected("queue_full")
    observer.request_rejected("draining")
    observer.request_started(queue_wait_s=0.002)
    observer.first_token(seconds_since_submit=0.004)
    observer.encoder_run(rows=2, seconds=0.0007)
    for _ in range(3):
        observer.decoder_step(rows=8, seconds=0.0003)
    observer.request_finished("eos", duration_s=0.02, output_tokens=10)
    observer.request_finished("deadline", duration_s=1.5, output_tokens=4)
    observer.occupancy(queued=5, queued_rows=9, running_requests=3, running_rows=12)
    observer.set_capacity(max_queue=64, max_rows=256)

    after = samples(scrape(server.url))

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("s2s_requests_received_total") == 2
    assert delta("s2s_source_tokens_count") == 2
    assert delta("s2s_source_tokens_sum") == 307
    assert delta("s2s_source_tokens_bucket", le="8.0") == 1  # 7 falls in le=8, 300 does not
    assert delta("s2s_requests_rejected_total", reason="queue_full") == 1
    assert delta("s2s_requests_rejected_total", reason="draining") == 1
    assert delta("s2s_requests_rejected_total", reason="invalid") == 0
    assert delta("s2s_queue_wait_seconds_count") == 1
    assert delta("s2s_queue_wait_seconds_bucket", le="0.0025") == 1
    assert delta("s2s_queue_wait_seconds_bucket", le="0.001") == 0
    assert delta("s2s_time_to_first_token_seconds_count") == 1
    assert delta("s2s_step_duration_seconds_count", step="encoder") == 1
    assert delta("s2s_step_duration_seconds_count", step="decoder") == 3
    assert delta("s2s_step_duration_seconds_sum", step="decoder") == pytest.approx(0.0009)
    assert delta("s2s_step_duration_seconds_bucket", step="decoder", le="0.0005") == 3
    assert delta("s2s_step_rows_sum", step="decoder") == 24
    assert delta("s2s_step_rows_sum", step="encoder") == 2
    assert delta("s2s_requests_finished_total", reason="eos") == 1
    assert delta("s2s_requests_finished_total", reason="deadline") == 1
    assert delta("s2s_requests_finished_total", reason="max_length") == 0
    assert delta("s2s_request_duration_seconds_count") == 2
    assert delta("s2s_request_duration_seconds_sum") == pytest.approx(1.52)
    assert delta("s2s_output_tokens_total") == 14
    # Only completed requests (eos / max_length) shape the length and per-token distributions.
    assert delta("s2s_output_length_tokens_count") == 1
    assert delta("s2s_output_length_tokens_sum") == 10
    assert delta("s2s_time_per_output_token_seconds_sum") == pytest.approx(0.002)
    assert value(after, "s2s_queued_requests") == 5
    assert value(after, "s2s_queued_rows") == 9
    assert value(after, "s2s_running_requests") == 3
    assert value(after, "s2s_running_rows") == 12
    assert value(after, "s2s_queue_capacity_rows") == 64
    assert value(after, "s2s_batch_capacity_rows") == 256


def test_info_metric_carries_build_version_bundle_sha_and_provider(served):
    _, server = served
    scraped = samples(scrape(server.url))
    key = (
        "s2s_model_info",
        frozenset({**LABELS, "build_version": __version__, "bundle_sha": "ab" * 32}.items()),
    )
    assert scraped.get(key) == 1.0, [k for k in scraped if k[0] == "s2s_model_info"]


def test_model_observer_publishes_the_scheduler_limits_it_is_given(service_metrics):
    service_metrics.model_observer("toy", "3", "00", max_queue=32, max_rows=128)
    server = start_metrics_server(service_metrics.registry, "127.0.0.1", 0)
    try:
        scraped = samples(scrape(server.url))
    finally:
        server.close()
    assert value(scraped, "s2s_queue_capacity_rows") == 32
    assert value(scraped, "s2s_batch_capacity_rows") == 128


def test_serving_gauge_follows_the_health_status(service_metrics, served):
    _, server = served
    assert samples(scrape(server.url))[("s2s_serving", frozenset())] == 0
    service_metrics.set_serving(True)
    assert samples(scrape(server.url))[("s2s_serving", frozenset())] == 1
    service_metrics.set_serving(False)
    assert samples(scrape(server.url))[("s2s_serving", frozenset())] == 0


def test_process_metrics_are_exported(served):
    _, server = served
    names = {name for name, _ in samples(scrape(server.url))}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def test_servers_in_one_process_keep_their_series_apart():
    first, second = ServiceMetrics(provider="cpu"), ServiceMetrics(provider="cuda")
    first.model_observer("toy", "1", "00").request_queued(src_len=3)
    servers = [start_metrics_server(m.registry, "127.0.0.1", 0) for m in (first, second)]
    try:
        one, two = (samples(scrape(s.url)) for s in servers)
    finally:
        for s in servers:
            s.close()
    assert one[("s2s_requests_received_total", frozenset({**LABELS, "version": "1"}.items()))] == 1
    assert not any(name == "s2s_requests_received_total" for name, _ in two)


def test_observer_implements_every_method_of_the_protocol_with_its_signature():
    observer = ServiceMetrics(provider="cpu").model_observer("toy", "1", "00")
    for name, member in inspect.getmembers(NullObserver, inspect.isfunction):
        assert hasattr(SchedulerObserver, name)
        assert inspect.signature(getattr(observer, name)) == inspect.signature(
            member.__get__(NullObserver())
        ), f"{name} differs from the SchedulerObserver protocol"


def test_unknown_reasons_are_folded_instead_of_minting_label_values(served):
    observer, server = served
    observer.request_rejected("surprise")
    observer.request_finished("surprise", duration_s=0.1, output_tokens=1)
    scraped = samples(scrape(server.url))
    assert value(scraped, "s2s_requests_rejected_total", reason="invalid") == 1
    assert value(scraped, "s2s_requests_finished_total", reason="error") == 1
    assert not any(("reason", "surprise") in labels for _, labels in scraped)


@pytest.mark.tools
def test_exposition_passes_promtool_check_metrics(served):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: run scripts/install_tools.sh")
    observer, server = served
    observer.request_queued(src_len=3)
    observer.request_finished("eos", duration_s=0.1, output_tokens=2)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(server.url), capture_output=True, text=True, timeout=30
    )
    # rc 3 = lint problems (naming, help, units); any output is a warning we do not accept.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
