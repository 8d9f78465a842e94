"""The benchmark's baseline servers (service/bench/baseline_servers.py) as real subprocesses: the
worker-pool server must answer exactly what the s2s server answers (a baseline that decoded
differently would not be a baseline), and bad input gets the same status code."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import pytest
from e2e_support import E2EModels, date_texts
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.bench.variants import _free_port
from service.client import AsyncTranslatorClient
from service.server import RunningServer


async def _wait_serving(address: str, process: subprocess.Popen) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            assert process.poll() is None, "the baseline server exited"
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the baseline server never reported SERVING")


async def test_pool_server_answers_what_the_s2s_server_answers(
    models: E2EModels, server: RunningServer, client: AsyncTranslatorClient
) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "service.bench.baseline_servers", "--kind", "pool",
               "--bundle", str(models.bundle), "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command)
    try:
        await _wait_serving(f"127.0.0.1:{port}", process)
        async with AsyncTranslatorClient(f"127.0.0.1:{port}", timeout=30) as pool:
            texts = date_texts(12)
            for beam in (1, 3):
                ours = await client.translate(texts, beam_size=beam)
                theirs = await pool.translate(texts, beam_size=beam)
                for a, b in zip(ours, theirs, strict=True):
                    assert a.hypotheses[0].token_ids == b.hypotheses[0].token_ids
                    assert a.hypotheses[0].text == b.hypotheses[0].text
                    assert a.hypotheses[0].score == pytest.approx(b.hypotheses[0].score, abs=1e-4)
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await pool.translate(texts, beam_size=10_000)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        process.terminate()
        process.wait(timeout=30)
