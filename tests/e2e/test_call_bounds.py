"""Admission at the gate: calls and streams in progress are bounded; a call beyond a bound is
refused before its request is read, with RESOURCE_EXHAUSTED and RetryInfo; probes have their own
pool; what was admitted completes."""

from __future__ import annotations

import asyncio
import dataclasses

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


JUNK = b"\xff\xff\xff\xff"  # bytes that parse as no TranslateRequest: INVALID_ARGUMENT once read


async def _refused(call) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call was served")


async def test_decoding_calls_beyond_one_batch_of_rows_are_refused_before_they_are_read(models: E2EModels):
    # max_decoding 0: the scheduler's max_rows, here 2
    scheduler = dataclasses.replace(e2e_config(models).scheduler, max_rows=2, max_beam=2)
    async with running_server(e2e_config(models, scheduler=scheduler)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslatorStub(channel)
            busy = [
                stub.Translate(pb.TranslateRequest(texts=["1 May 2001"], options=LONG, model=ENDLESS))
                for _ in range(2)
            ]
            await until(lambda: server.gate.slots.in_progress["decoding"] == 2)
            refused = await _refused(stub.Translate(pb.TranslateRequest(texts=["2 May 2002"]), timeout=10))
            assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 decoding calls in progress" in refused.details() and _retry_after_s(refused) > 0
            # Refused unread: junk gets the refusal, not the INVALID_ARGUMENT that reading it gives.
            junk = await _refused(channel.unary_unary("/s2s.v1.Translator/Translate")(JUNK, timeout=10))
            assert junk.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            stream = await _refused(
                stub.TranslateStream(pb.TranslateStreamRequest(text="3 May 2003"), timeout=10).read()
            )
            assert stream.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            # Calls that decode nothing are not held back by those that do.
            assert (await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)).name
            for call in busy:
                call.cancel()
            await until(lambda: server.gate.slots.in_progress["decoding"] == 0)
            assert (await stub.Translate(pb.TranslateRequest(texts=["2 May 2002"]), timeout=10)).results


async def test_while_every_decode_queue_is_full_a_call_is_refused_before_it_is_read(models: E2EModels):
    scheduler = dataclasses.replace(e2e_config(models).scheduler, max_rows=1, max_queue=1, max_beam=1)
    config = e2e_config(
        models, bundles=(models.endless_bundle,), scheduler=scheduler, calls=CallLimits(max_decoding=8)
    )
    async with running_server(config) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslatorStub(channel)
            translate_raw = channel.unary_unary("/s2s.v1.Translator/Translate")
            # One endless call holds the only row; the next one waits in the queue, filling it.
            (model,) = server.registry.models
            held = [stub.Translate(pb.TranslateRequest(texts=["1 May 2001"], options=LONG))]
            await until(lambda: model.scheduler.running_requests == 1)  # or the next is refused
            held.append(stub.Translate(pb.TranslateRequest(texts=["2 May 2002"], options=LONG)))
            await until(lambda: model.scheduler.queued_rows == 1)
            junk = await _refused(translate_raw(JUNK, timeout=10))
            assert junk.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "decoder rows queued" in junk.details() and _retry_after_s(junk) > 0
            for call in held:
                call.cancel()
            await until(lambda: model.scheduler.queued_rows == 0)
            # With room again, the same bytes are read, and found wanting.
            junk = await _refused(translate_raw(JUNK, timeout=10))
            assert junk.code() is grpc.StatusCode.INVALID_ARGUMENT
