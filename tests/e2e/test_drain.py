"""Drain under load (issue 13, defect 6): at stop, health says NOT_SERVING first, calls in
progress (heavy ones, most still queued) all complete, new calls get UNAVAILABLE, nothing is
CANCELLED; and a rolling restart of two servers behind the shipped client's retry policy loses
no request."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
from e2e_support import ENDLESS_MODEL, E2EModels, date_texts, e2e_config, until
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.client import AsyncTranslatorClient
from service.server import running_server

HEAVY = pb.DecodeOptions(beam_size=8, max_length=48)  # 16 texts x beam 8 = 128 rows a call


async def test_stop_under_heavy_load_completes_every_accepted_call(models: E2EModels):
    """20 clients send heavy calls and retry when refused (RetryInfo), as the shipped client's
    users do; the queue bound keeps what is accepted within what the grace period can finish."""
    config = e2e_config(models)  # the grace period (10 s) and a queue of 256 rows
    texts = date_texts(16)
    heavy = pb.TranslateRequest(texts=texts, options=HEAVY, model=pb.ModelSpec(name=ENDLESS_MODEL))
    outcomes: list[str] = []
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)

        async def client() -> None:
            while True:
                try:
                    answer = await stub.Translate(heavy, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    outcomes.append(exc.code().name)
                    if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
                        return  # UNAVAILABLE: this server is going; a real client goes elsewhere
                    await asyncio.sleep(retry_delay(exc))
                    continue
                assert len(answer.results) == 16 and len(answer.results[0].hypotheses[0].tokens) == 48
                outcomes.append("OK")

        clients = [asyncio.ensure_future(client()) for _ in range(20)]
        scheduler = server.registry.get(ENDLESS_MODEL).scheduler
        await until(lambda: scheduler.queued_rows > 0 and "RESOURCE_EXHAUSTED" in outcomes)
        # Calls the scheduler holds now (16 texts each): they must all end OK. No await between.
        accepted = (scheduler.running_requests + scheduler.queued) // 16
        ok_before = outcomes.count("OK")
        stopping = asyncio.ensure_future(server.stop())
        await until(lambda: server.gate._draining)
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await asyncio.gather(*clients)
        await stopping
    assert accepted >= 1
    assert outcomes.count("OK") >= ok_before + accepted  # every call accepted at stop finished
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}, outcomes
    assert outcomes.count("UNAVAILABLE") == 20  # each client, refused once the drain began


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)
    retry = error_details_pb2.RetryInfo()
    assert status is not None and status.details[0].Unpack(retry), "RESOURCE_EXHAUSTED without RetryInfo"
    return retry.retry_delay.ToNanoseconds() / 1e9


async def test_a_rolling_restart_behind_the_retry_policy_loses_nothing(models: E2EModels):
    """Two servers; the client holds both addresses (round_robin). Each is stopped and started
    again in turn while the client keeps sending; every call succeeds."""
    config = e2e_config(models, grace_period_s=30.0)
    first = running_server(config)
    a = await first.__aenter__()
    b_cm = running_server(config)
    b = await b_cm.__aenter__()
    ports = [a.port, b.port]
    target = f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    results: list[str | Exception] = []
    stop = asyncio.Event()

    async def keep_sending() -> None:
        async with AsyncTranslatorClient(target, timeout=30) as client:
            while not stop.is_set():
                try:
                    results.append((await client.translate_one("1 May 2001")).text)
                except grpc.aio.AioRpcError as exc:
                    results.append(exc)

    servers = {0: (first, a), 1: (b_cm, b)}
    senders = [asyncio.ensure_future(keep_sending()) for _ in range(4)]
    try:
        await until(lambda: len(results) > 20)
        for index in (0, 1):  # restart each on its own port, one after the other
            manager, running = servers[index]
            await running.stop()
            await manager.__aexit__(None, None, None)
            count = len(results)
            await until(lambda count=count: len(results) > count + 20)  # served by the other one meanwhile
            restarted = running_server(dataclasses.replace(config, port=ports[index]))
            servers[index] = (restarted, await restarted.__aenter__())
            count = len(results)
            await until(lambda count=count: len(results) > count + 20)
        stop.set()
        await asyncio.gather(*senders)
    finally:
        stop.set()
        for manager, _ in servers.values():
            await manager.__aexit__(None, None, None)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, f"{len(errors)} of {len(results)} calls failed: {errors[:3]}"
