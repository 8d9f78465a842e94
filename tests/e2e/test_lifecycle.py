"""Health, reflection and graceful drain of a real server."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import onnxruntime
import pytest
from e2e_support import ENDLESS_MODEL, E2EModels, e2e_config
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from engine.sessions import ProviderUnavailable
from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.client import AsyncTranslatorClient
from service.server import RunningServer, StartupError, running_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("service", ["", "s2s.v1.Translator"])
async def test_health_is_serving_per_service_and_overall(channel: grpc.aio.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == SERVING


async def test_health_of_an_unknown_service_is_not_found(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="nope.v1.Nothing"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_translator(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    response = await call.read()
    names = {s.name for s in response.list_services_response.service}
    assert {"s2s.v1.Translator", "grpc.health.v1.Health"} <= names
    # grpcurl also asks for the file that defines a service: it must be resolvable.
    call = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="s2s.v1.Translator")])
    )
    response = await call.read()
    assert response.file_descriptor_response.file_descriptor_proto, response


async def _wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.002)


async def test_drain_reports_not_serving_first_and_lets_in_flight_requests_finish(
    server: RunningServer, channel: grpc.aio.Channel, stub: pb_grpc.TranslatorStub
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service="s2s.v1.Translator"))
    assert (await watch.read()).status == SERVING

    scheduler = server.registry.get(ENDLESS_MODEL).scheduler
    # 500 steps of beam 4 on the endless model, two texts one after the other (max_rows is 64,
    # so they run together): long enough to be caught in flight.
    long_request = pb.TranslateRequest(
        texts=["1 May 2001", "2 June 2002"],
        options=pb.DecodeOptions(beam_size=4, max_length=500),
        model=pb.ModelSpec(name=ENDLESS_MODEL),
    )
    in_flight = asyncio.ensure_future(stub.Translate(long_request, timeout=60))
    await _wait_until(lambda: scheduler.running_requests == 2)
    stopping = asyncio.ensure_future(server.stop(grace_s=60))

    assert (await watch.read()).status == NOT_SERVING  # first, while the request still runs
    response = await in_flight  # finishes normally within the grace period
    assert [len(r.hypotheses[0].token_ids) for r in response.results] == [500, 500]
    await stopping
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_cuda_falls_back_to_cpu_unless_required(models: E2EModels) -> None:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing to fall back from")
    config = e2e_config(models)
    cuda = dataclasses.replace(config.runner, provider="cuda")
    async with running_server(dataclasses.replace(config, runner=cuda)) as server:
        async with AsyncTranslatorClient(server.address, timeout=30) as client:
            assert (await client.model_info()).execution_provider == "cpu"
    required = dataclasses.replace(cuda, require_provider=True)
    with pytest.raises(ProviderUnavailable, match="CUDAExecutionProvider"):
        async with running_server(dataclasses.replace(config, runner=required)):
            pass


async def test_a_second_server_on_a_taken_port_fails(models: E2EModels, server: RunningServer) -> None:
    taken = e2e_config(models, port=server.port, warmup=False)
    with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        async with running_server(taken):
            pass
