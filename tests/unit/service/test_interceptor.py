"""service/interceptor.py on a real grpc.aio server, read back through real /metrics scrapes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from service.interceptor import GrpcServerMetricsInterceptor
from service.metrics import start_metrics_server

SERVICE = "test.Echo"


# The tiny test service: raw bytes in and out, one handler per way an RPC can end.
async def _echo(request: bytes, context: aio.ServicerContext) -> bytes:
    return request


async def _abort(request: bytes, context: aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")


async def _crash(request: bytes, context: aio.ServicerContext) -> bytes:
    raise ValueError("a bug in the handler")


async def _set_code(request: bytes, context: aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.NOT_FOUND)
    return b""


async def _slow(request: bytes, context: aio.ServicerContext) -> bytes:
    await asyncio.sleep(30)
    return request


async def _stream_yields(request: bytes, context: aio.ServicerContext):
    for i in range(3):
        yield request + bytes([i])


async def _stream_writes(request: bytes, context: aio.ServicerContext) -> None:
    await context.write(request)
    await context.write(request)


async def _stream_then_abort(request: bytes, context: aio.ServicerContext):
    yield request
    await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "decoder deadline")


async def _stream_forever(request: bytes, context: aio.ServicerContext):
    while True:
        yield request
        await asyncio.sleep(0.01)


async def _collect(request_iterator, context: aio.ServicerContext) -> bytes:
    return b"".join([r async for r in request_iterator])


def _echo_service() -> grpc.GenericRpcHandler:
    unary = grpc.unary_unary_rpc_method_handler
    stream = grpc.unary_stream_rpc_method_handler
    handlers = {
        "Echo": unary(_echo),
        "Abort": unary(_abort),
        "Crash": unary(_crash),
        "SetCode": unary(_set_code),
        "Slow": unary(_slow),
        "StreamYields": stream(_stream_yields),
        "StreamWrites": stream(_stream_writes),
        "StreamThenAbort": stream(_stream_then_abort),
        "StreamForever": stream(_stream_forever),
        "Collect": grpc.stream_unary_rpc_method_handler(_collect),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class Harness:
    def __init__(self, channel: aio.Channel, metrics_url: str) -> None:
        self.channel = channel
        self.metrics_url = metrics_url

    async def scrape(self) -> dict[tuple[str, frozenset], float]:
        text = await asyncio.to_thread(_get, self.metrics_url)
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def settled_scrape(self, timeout_s: float = 30.0) -> dict[tuple[str, frozenset], float]:
        """A scrape taken once every started call is also counted as handled: the client has its
        status a moment before the server's interceptor counts the call's end."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            scraped = await self.scrape()
            started = sum(v for (n, _), v in scraped.items() if n == "grpc_server_started_total")
            handled = sum(v for (n, _), v in scraped.items() if n == "grpc_server_handled_total")
            if started == handled or asyncio.get_running_loop().time() > deadline:
                return scraped
            await asyncio.sleep(0.01)

    async def wait_handled(self, method: str, grpc_type: str, code: str, expected: float) -> dict:
        """Server-side completion of a cancelled call lags the client: poll (bounded) for it."""
        for _ in range(100):
            scraped = await self.scrape()
            if (
                scraped.get(_key("grpc_server_handled_total", method, grpc_type, grpc_code=code), 0)
                >= expected
            ):
                return scraped
            await asyncio.sleep(0.05)
        raise AssertionError(f"{method} never counted as {code}: {scraped}")

    def unary(self, method: str):
        return self.channel.unary_unary(f"/{SERVICE}/{method}")

    def stream(self, method: str):
        return self.channel.unary_stream(f"/{SERVICE}/{method}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _key(name: str, method: str, grpc_type: str, service: str = SERVICE, **extra: str):
    labels = {"grpc_service": service, "grpc_method": method, "grpc_type": grpc_type, **extra}
    return (name, frozenset(labels.items()))


def _delta(before: dict, after: dict, name: str, method: str, grpc_type: str, **extra: str) -> float:
    key = _key(name, method, grpc_type, **extra)
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
async def harness():
    registry = CollectorRegistry()
    interceptor = GrpcServerMetricsInterceptor(registry)
    interceptor.initialize(health_pb2.DESCRIPTOR.services_by_name["Health"])
    server = aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([_echo_service()])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    exporter = start_metrics_server(registry, "127.0.0.1", 0)
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(channel, exporter.url)
    finally:
        await channel.close()
        await server.stop(None)
        exporter.close()


async def test_unary_ok_counts_start_one_message_each_way_ok_and_a_latency(harness):
    before = await harness.scrape()
    for _ in range(2):
        assert await harness.unary("Echo")(b"hi") == b"hi"
    after = await harness.settled_scrape()
    d = lambda name, **extra: _delta(before, after, name, "Echo", "unary", **extra)  # noqa: E731
    assert d("grpc_server_started_total") == 2
    assert d("grpc_server_handled_total", grpc_code="OK") == 2
    assert d("grpc_server_msg_received_total") == 2
    assert d("grpc_server_msg_sent_total") == 2
    assert d("grpc_server_handling_seconds_count") == 2
    assert d("grpc_server_handling_seconds_bucket", le="+Inf") == 2


@pytest.mark.parametrize(
    ("method", "code"),
    [("Abort", "RESOURCE_EXHAUSTED"), ("Crash", "UNKNOWN"), ("SetCode", "NOT_FOUND")],
)
async def test_unary_failures_count_the_code_the_client_sees_and_no_sent_message(harness, method, code):
    before = await harness.scrape()
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary(method)(b"x")
    assert caught.value.code().name == code
    after = await harness.settled_scrape()
    assert _delta(before, after, "grpc_server_handled_total", method, "unary", grpc_code=code) == 1
    assert _delta(before, after, "grpc_server_handled_total", method, "unary", grpc_code="OK") == 0
    assert _delta(before, after, "grpc_server_msg_received_total", method, "unary") == 1
    assert _delta(before, after, "grpc_server_msg_sent_total", method, "unary") == 0


async def test_deadline_passing_in_the_handler_counts_deadline_exceeded(harness):
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.unary("Slow")(b"x", timeout=0.2)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    scraped = await harness.wait_handled("Slow", "unary", "DEADLINE_EXCEEDED", 1)
    assert scraped.get(_key("grpc_server_handled_total", "Slow", "unary", grpc_code="CANCELLED"), 0) == 0


async def test_client_cancelling_counts_cancelled(harness):
    call = harness.unary("Slow")(b"x")
    await asyncio.sleep(0.2)
    call.cancel()
    await harness.wait_handled("Slow", "unary", "CANCELLED", 1)


async def test_server_stream_counts_each_yielded_and_written_message(harness):
    before = await harness.scrape()
    assert [m async for m in harness.stream("StreamYields")(b"a")] == [b"a\x00", b"a\x01", b"a\x02"]
    assert [m async for m in harness.stream("StreamWrites")(b"b")] == [b"b", b"b"]
    after = await harness.settled_scrape()
    for method, sent in (("StreamYields", 3), ("StreamWrites", 2)):
        d = lambda name, **extra: _delta(before, after, name, method, "server_stream", **extra)  # noqa: E731,B023
        assert d("grpc_server_started_total") == 1
        assert d("grpc_server_msg_received_total") == 1
        assert d("grpc_server_msg_sent_total") == sent, method
        assert d("grpc_server_handled_total", grpc_code="OK") == 1
        assert d("grpc_server_handling_seconds_count") == 1


async def test_stream_aborted_midway_counts_its_code_and_the_messages_sent_before(harness):
    before = await harness.scrape()
    call = harness.stream("StreamThenAbort")(b"a")
    received = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for message in call:
            received.append(message)
    assert received == [b"a"] and caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    after = await harness.settled_scrape()
    d = lambda name, **extra: _delta(before, after, name, "StreamThenAbort", "server_stream", **extra)  # noqa: E731
    assert d("grpc_server_handled_total", grpc_code="DEADLINE_EXCEEDED") == 1
    assert d("grpc_server_msg_sent_total") == 1


async def test_stream_cancelled_by_the_client_counts_cancelled(harness):
    call = harness.stream("StreamForever")(b"a")
    assert await call.read() == b"a"
    call.cancel()
    await harness.wait_handled("StreamForever", "server_stream", "CANCELLED", 1)


async def test_client_stream_counts_every_received_message(harness):
    before = await harness.scrape()
    call = harness.channel.stream_unary(f"/{SERVICE}/Collect")
    assert await call(iter([b"a", b"b", b"c"])) == b"abc"
    after = await harness.settled_scrape()
    d = lambda name, **extra: _delta(before, after, name, "Collect", "client_stream", **extra)  # noqa: E731
    assert d("grpc_server_msg_received_total") == 3
    assert d("grpc_server_msg_sent_total") == 1
    assert d("grpc_server_handled_total", grpc_code="OK") == 1


async def test_real_health_service_is_measured_and_initialized_to_zero(harness):
    service = "grpc.health.v1.Health"
    before = await harness.scrape()
    # initialize(): every method and code exists at zero before any call.
    assert before[_key("grpc_server_started_total", "Watch", "server_stream", service=service)] == 0
    assert (
        before[_key("grpc_server_handled_total", "Check", "unary", service=service, grpc_code="UNAVAILABLE")]
        == 0
    )
    stub = health_pb2_grpc.HealthStub(harness.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(aio.AioRpcError):
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    after = await harness.settled_scrape()
    handled = lambda code: _delta(  # noqa: E731
        before, after, "grpc_server_handled_total", "Check", "unary", service=service, grpc_code=code
    )
    assert handled("OK") == 1 and handled("NOT_FOUND") == 1


async def test_concurrent_calls_of_one_method_are_each_counted_once(harness):
    # The wrapper of a method is built once and shared by its calls: what one call records must
    # stay its own while twenty of them, half failing, run at once.
    before = await harness.settled_scrape()
    results = await asyncio.gather(
        *(harness.unary("Echo")(b"x") for _ in range(20)),
        *(harness.unary("Crash")(b"x") for _ in range(20)),
        return_exceptions=True,
    )
    assert sum(r == b"x" for r in results) == 20
    assert sum(isinstance(r, aio.AioRpcError) for r in results) == 20
    after = await harness.settled_scrape()
    for method, code in (("Echo", "OK"), ("Crash", "UNKNOWN")):
        assert _delta(before, after, "grpc_server_started_total", method, "unary") == 20
        assert _delta(before, after, "grpc_server_handled_total", method, "unary", grpc_code=code) == 20
        assert _delta(before, after, "grpc_server_msg_received_total", method, "unary") == 20
    assert _delta(before, after, "grpc_server_msg_sent_total", "Echo", "unary") == 20
    assert _delta(before, after, "grpc_server_msg_sent_total", "Crash", "unary") == 0


async def test_unknown_methods_are_not_counted(harness):
    with pytest.raises(aio.AioRpcError) as caught:
        await harness.channel.unary_unary("/scanner.Probe/Anything")(b"x")
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert not any(("grpc_service", "scanner.Probe") in labels for _, labels in await harness.scrape())


@pytest.mark.tools
async def test_exposition_passes_promtool_check_metrics(harness):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: run scripts/install_tools.sh")
    await harness.unary("Echo")(b"x")
    text = await asyncio.to_thread(_get, harness.metrics_url)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
