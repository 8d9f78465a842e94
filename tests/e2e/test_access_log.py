"""The access log (`--access-log`): one line per call with method, status, time, model, number of
texts and peer; never the text. Off by default."""

from __future__ import annotations

import logging

import grpc
import pytest
from e2e_support import E2EModels, e2e_config, until

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.server import running_server

SECRET = "11 September 1973 sehr geheim"


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "s2s.access"]


async def test_one_line_per_call_with_what_an_operator_needs_and_no_text(models: E2EModels, caplog):
    caplog.set_level(logging.INFO, logger="s2s.access")
    async with running_server(e2e_config(models, access_log=True)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.TranslatorStub(channel)
            await stub.Translate(pb.TranslateRequest(texts=[SECRET, "1 May 2001"]), timeout=30)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Translate(
                    pb.TranslateRequest(texts=[SECRET], options=pb.DecodeOptions(beam_size=0))
                )
            async for _ in stub.TranslateStream(pb.TranslateStreamRequest(text=SECRET), timeout=30):
                pass
            await until(lambda: len(_access_lines(caplog)) == 3)
    ok, invalid, stream = _access_lines(caplog)
    assert (
        ok.startswith("method=s2s.v1.Translator/Translate code=OK ") and " model=dates-tiny/1 texts=2 " in ok
    )
    assert " code=INVALID_ARGUMENT " in invalid and " texts=1 " in invalid
    assert stream.startswith("method=s2s.v1.Translator/TranslateStream code=OK ")
    assert all(" ms=" in line and " peer=ipv" in line for line in (ok, invalid, stream))
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "geheim" not in everything and "September" not in everything


async def test_no_access_log_by_default(models: E2EModels, caplog):
    caplog.set_level(logging.INFO, logger="s2s.access")
    async with running_server(e2e_config(models)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await pb_grpc.TranslatorStub(channel).Translate(
                pb.TranslateRequest(texts=["1 May 2001"]), timeout=30
            )
    assert not _access_lines(caplog)
