"""Admission at the gate: calls and streams in progress are bounded; a call beyond a bound is
refused before its request is read, with RESOURCE_EXHAUSTED and RetryInfo; probes have their own
pool; what was admitted completes."""

from __future__ import annotations

import asyncio

import grpc
from e2e_support import ENDLESS_MODEL, E2EModels, e2e_config, until
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.admission import CallLimits
from service.server import running_server

LONG = pb.DecodeOptions(max_length=512)
# 16 texts x beam 8 = 128 rows of an endless model for 512 steps: a call that lasts, so that the
# refusals below happen while it is in progress (they take milliseconds; it takes seconds).
HEAVY = pb.DecodeOptions(max_length=512, beam_size=8)
ENDLESS = pb.ModelSpec(name=ENDLESS_MODEL)


def _retry_after_s(error: grpc.aio.AioRpcError) -> float:
    retry = error_details_pb2.RetryInfo()
    status = rpc_status.from_call(error)
    assert status is not None and status.details[0].Unpack(retry), "no RetryInfo"
    return retry.retry_delay.ToNanoseconds() / 1e9


async def test_calls_beyond_the_bound_are_refused_with_a_retry_hint_and_probes_still_answer(
    models: E2EModels,
):
    config = e2e_config(models, calls=CallLimits(max_calls=2, max_streams=2, max_health_calls=4))
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        busy = [
            asyncio.ensure_future(
                stub.Translate(
                    pb.TranslateRequest(texts=["1 May 2001"] * 16, options=HEAVY, model=ENDLESS), timeout=120
                )
            )
            for _ in range(2)
        ]
        await until(lambda: server.gate.in_progress == 2)
        for _ in range(5):
            try:
                await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=10)
                raise AssertionError("a call beyond max_calls was served")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "2 calls in progress" in exc.details()
                assert _retry_after_s(exc) > 0
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service="s2s.v1.Translator"), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert all(len(r.results) == 16 for r in await asyncio.gather(*busy))
        await until(lambda: server.gate.in_progress == 0)
        assert (await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=10)).results


async def test_streams_have_their_own_bound_within_the_calls_bound(models: E2EModels):
    config = e2e_config(models, calls=CallLimits(max_calls=8, max_streams=1))
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        first = stub.TranslateStream(
            pb.TranslateStreamRequest(text="1 May 2001", options=LONG, model=ENDLESS)
        )
        await first.read()  # one token: the stream is in progress
        second = stub.TranslateStream(pb.TranslateStreamRequest(text="2 May 2002"), timeout=10)
        try:
            await second.read()
            raise AssertionError("a stream beyond max_streams was served")
        except grpc.aio.AioRpcError as exc:
            assert (
                exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "1 streams in progress" in exc.details()
            )
        assert (
            await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=10)
        ).results  # unary: room
        first.cancel()
        await until(lambda: server.gate.slots.in_progress["streams"] == 0)
        messages = [
            m async for m in stub.TranslateStream(pb.TranslateStreamRequest(text="3 May 2003"), timeout=10)
        ]
        assert messages[-1].HasField("result")
