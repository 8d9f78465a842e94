"""The serving image, built by scripts/build_images.sh and run as the compose file and the
Kubernetes Deployment run it: read-only root, uid 10001, no capabilities, no new privileges, the
compose file's S2S_* settings, the bundles mounted read-only at /models. A real client translates
through the published port, /metrics answers, the image's own HEALTHCHECK reports healthy, SIGTERM
under load lets the requests in flight finish and exits 0; the image holds no torch and no
benchmark. Its build time and size are printed at the end of the run."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from deploy_tools import ROOT
from grpc_health.v1 import health_pb2, health_pb2_grpc
from image_tools import (
    Container,
    build,
    compose_service,
    engine,
    files_in_image,
    free_port,
    image_size_mb,
    metric,
    run,
    run_hardened,
)

from service.client import TranslatorClient

pytestmark = [pytest.mark.images, pytest.mark.timeout(1500)]

PAIRS = {"Tuesday, 10 July 2007": "2007-07-10", "3 mars 1999": "1999-03-03"}  # the shipped dates model
# The size with the Debian stand-in base was 333 MB; torch alone would add ~800 MB.
MAX_SIZE_MB = 450
_names = itertools.count()


@dataclass
class Served:
    container: Container
    grpc_port: int
    metrics_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@pytest.fixture(scope="module")
def image() -> str:
    return build("serve")


def _start(image: str) -> Served:
    grpc_port, metrics_port = free_port(), free_port()
    env = {key: str(value) for key, value in compose_service("s2s")["environment"].items()}
    container = run_hardened(
        image,
        f"s2s-image-test-{os.getpid()}-{next(_names)}",
        ports={grpc_port: int(env["S2S_PORT"]), metrics_port: int(env["S2S_METRICS_PORT"])},
        env=env,
        # What the compose bundle service and the Kubernetes init container leave at /models.
        mounts=[f"{ROOT / 's2s' / 'bundles'}:{env['S2S_BUNDLE']}:ro"],
    )
    container.wait_healthy()
    return Served(container, grpc_port, metrics_port)


@pytest.fixture(scope="module")
def served(image: str) -> Iterator[Served]:
    server = _start(image)
    try:
        yield server
    finally:
        server.container.remove()


def test_a_real_client_translates_through_the_published_port(served: Served):
    with TranslatorClient(served.target, timeout=30) as client:
        assert [t.text for t in client.translate(list(PAIRS), beam_size=4)] == list(PAIRS.values())
        streamed = list(client.stream("3 mars 1999", beam_size=4))
        assert streamed[-1].text == "1999-03-03"
        info = client.model_info()
    assert (info.name, info.execution_provider) == ("dates", "cpu"), info


def test_metrics_answer_and_count_the_call(served: Served):
    handled = {"name": "grpc_server_handled_total", "grpc_method": "Translate", "grpc_code": "OK"}
    before = metric(served.metrics_url, **handled)
    with TranslatorClient(served.target, timeout=30) as client:
        client.translate(["3 mars 1999"])
    assert metric(served.metrics_url, **handled) == before + 1
    assert metric(served.metrics_url, "s2s_model_info", provider="cpu", model="dates") == 1
    assert metric(served.metrics_url, "s2s_serving") == 1


def test_the_images_own_healthcheck_reports_healthy(served: Served):
    # Built with --format docker, so the HEALTHCHECK survived: the engine runs the image's command.
    assert "service.healthcheck" in served.container.inspect("{{json .Config.Healthcheck}}")
    assert served.container.healthy()
    assert served.container.inspect("{{.State.Health.Status}}") == "healthy"


def test_it_runs_read_only_as_uid_10001_with_no_capabilities(served: Served):
    status = served.container.exec("cat", "/proc/1/status").stdout
    assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status, status
    assert served.container.exec("id", "-u").stdout.strip() == "10001"
    refused = served.container.exec("touch", "/opt/venv/written")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused


def test_it_starts_without_warnings_or_tracebacks(served: Served):
    logs = served.container.logs()
    assert "loaded dates/1 from /models/dates/1" in logs, logs
    # ONNX Runtime's telemetry warned at every start on a read-only root (ORT_DISABLE_TELEMETRY).
    for unwanted in ("Failed to persist telemetry", "[W:onnxruntime", "Traceback", " WARNING ", " ERROR "):
        assert unwanted not in logs, logs


def test_the_image_holds_no_torch_and_no_benchmark_and_stays_small(image: str):
    found = files_in_image(
        image, "*/site-packages/torch", "*/site-packages/benchmarks", "*/site-packages/service"
    )
    assert [path.rsplit("/", 2)[-2:] for path in found] == [["site-packages", "service"]], found
    listed = run([engine(), "run", "--rm", "--entrypoint", "s2s", image, "--help"])
    assert listed.returncode == 0, listed.stderr
    assert "serve" in listed.stdout and "bench" not in listed.stdout, listed.stdout
    assert image_size_mb(image) < MAX_SIZE_MB, f"{image} grew to {image_size_mb(image)} MB"


def test_sigterm_under_load_lets_requests_in_flight_finish_and_exits_0(image: str):
    server = _start(image)
    try:
        calls, exit_code = _terminate_under_load(server, clients=4)
        logs = server.container.logs()
    finally:
        server.container.remove()
    assert exit_code == 0, logs
    assert "draining: NOT_SERVING" in logs and "server stopped" in logs, logs
    assert all(call.correct for call in calls if call.code == "OK"), calls
    # Every call sent before SIGTERM was answered; calls in flight when the server reported
    # NOT_SERVING were answered during the drain; later calls were refused (UNAVAILABLE, or
    # CANCELLED for one that reached the server as it stopped: issue 13's drain), none failed.
    assert all(call.code == "OK" for call in calls if call.sent_before_signal), calls
    assert any(call.code == "OK" and call.answered_while_draining for call in calls), calls
    assert {call.code for call in calls} <= {"OK", "UNAVAILABLE", "CANCELLED"}, calls


@dataclass(frozen=True)
class Call:
    client: int
    sent_before_signal: bool
    code: str
    correct: bool
    answered_while_draining: bool


def _terminate_under_load(server: Served, clients: int) -> tuple[list[Call], int]:
    """`clients` closed-loop clients, each sending 16 texts at beam 4 (64 rows: one decoder step at
    the compose settings' S2S_MAX_ROWS) until refused, and a health watcher; SIGTERM once every
    client has had an answer. Returns every call and the container's exit code."""
    texts = list(PAIRS) * 8
    expected = [PAIRS[text] for text in texts]
    loaded = threading.Barrier(clients + 1)
    signalled, draining = threading.Event(), threading.Event()
    calls: list[Call] = []

    def load(client_id: int) -> None:
        with TranslatorClient(server.target, timeout=60) as client:
            for number in range(500):  # bounded; the server refuses long before
                sent_before_signal = not signalled.is_set()
                try:
                    correct = [t.text for t in client.translate(texts, beam_size=4)] == expected
                    code = "OK"
                except grpc.RpcError as error:
                    correct, code = False, error.code().name
                calls.append(Call(client_id, sent_before_signal, code, correct, draining.is_set()))
                if number == 0:
                    loaded.wait(timeout=120)
                if code != "OK":
                    return

    def watch_health() -> None:
        with grpc.insecure_channel(server.target) as channel:
            request = health_pb2.HealthCheckRequest(service="s2s.v1.Translator")
            try:
                for reply in health_pb2_grpc.HealthStub(channel).Watch(request, timeout=120):
                    if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        draining.set()
                        return
            except grpc.RpcError:
                return  # the server went away

    threads = [threading.Thread(target=watch_health, daemon=True)]
    threads += [threading.Thread(target=load, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    loaded.wait(timeout=120)  # every client has had one answer: the load is established
    signalled.set()  # first: a call sent before this line was sent before SIGTERM
    exit_code = server.container.signal_and_wait("TERM")
    for thread in threads:
        thread.join(timeout=120)
    return calls, exit_code
