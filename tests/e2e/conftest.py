"""Fixtures of the e2e tests: real bundles (a tiny model trained for a few seconds and exported by
the real exporter), real ONNX Runtime sessions, a real grpc.aio server on a free localhost port,
always shut down when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from e2e_support import E2EModels, build_models, e2e_config

from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.client import AsyncTranslatorClient
from service.server import RunningServer, running_server


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> E2EModels:
    return build_models(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
async def server(models: E2EModels) -> AsyncIterator[RunningServer]:
    async with running_server(e2e_config(models)) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncTranslatorClient]:
    async with AsyncTranslatorClient(server.address, timeout=30) as translator:
        yield translator


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.TranslatorStub:
    return pb_grpc.TranslatorStub(channel)
