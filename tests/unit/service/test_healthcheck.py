"""`python -m service.healthcheck` (the image's HEALTHCHECK) against a real gRPC health service."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service.healthcheck import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def health_server():
    server = aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


async def probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode, out.decode()


async def test_serving_exits_zero_with_the_port_from_s2s_port(health_server):
    servicer, port = health_server
    await servicer.set(SERVICE_NAME, SERVING)
    rc, out = await probe(env={"S2S_PORT": str(port)})
    assert rc == 0 and "SERVING" in out, out


async def test_not_serving_while_draining_exits_one(health_server):
    servicer, port = health_server
    await servicer.set(SERVICE_NAME, SERVING)
    await servicer.enter_graceful_shutdown()
    rc, out = await probe("--port", str(port))
    assert rc == 1 and "NOT_SERVING" in out, out


async def test_unknown_service_exits_one(health_server):
    _, port = health_server
    rc, out = await probe("--port", str(port), "--service", "no.such.Service")
    assert rc == 1 and "NOT_FOUND" in out, out


async def test_nothing_listening_exits_one_within_the_timeout():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, out = await probe("--port", str(port), "--timeout", "1")
    assert rc == 1 and ("UNAVAILABLE" in out or "DEADLINE_EXCEEDED" in out), out


async def test_the_plaintext_health_port_is_asked_when_the_server_has_one(health_server):
    servicer, port = health_server
    await servicer.set(SERVICE_NAME, SERVING)
    env = {**os.environ, "S2S_PORT": "1", "S2S_HEALTH_PORT": str(port)}  # port 1: nothing listens
    code, out = await probe(env=env)
    assert code == 0, out
    code, _ = await probe(env={**env, "S2S_HEALTH_PORT": "off"})  # off: back to S2S_PORT
    assert code == 1
