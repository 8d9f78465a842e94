"""A decoder graph that fails inside ONNX Runtime (a real graph, not a mock): only the requests of
the failing step get INTERNAL, the cause is logged once, and the decode loop goes on."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from bundle_tools import copy_bundle, trap_decoder
from e2e_support import E2EModels, e2e_config

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.server import running_server

FAULTY = pb.ModelSpec(name="faulty")


async def test_a_failing_step_fails_its_requests_and_the_loop_goes_on(models: E2EModels, tmp_path, caplog):
    faulty = trap_decoder(copy_bundle(models.bundle, tmp_path, name="faulty"))
    config = e2e_config(models, bundles=(models.bundle, faulty))
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        # Step 0 (prev = <bos>) runs in the trapped graph; step 1 fails in ONNX Runtime.
        one_step = await stub.Translate(
            pb.TranslateRequest(texts=["1 May 2001"], options=pb.DecodeOptions(max_length=1), model=FAULTY),
            timeout=30,
        )
        assert len(one_step.results[0].hypotheses[0].token_ids) == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(
                pb.TranslateRequest(texts=["1 May 2001", "2 June 2002"], model=FAULTY), timeout=30
            )
        assert caught.value.code() is grpc.StatusCode.INTERNAL
        assert "onnxruntime" not in caught.value.details().lower()  # no internals reach the client
        # The same loop decodes what comes next; the other model never noticed.
        again = await stub.Translate(
            pb.TranslateRequest(texts=["3 July 2003"], options=pb.DecodeOptions(max_length=1), model=FAULTY),
            timeout=30,
        )
        assert again.results[0].hypotheses
        healthy = await asyncio.gather(
            *(stub.Translate(pb.TranslateRequest(texts=["4 August 2004"]), timeout=30) for _ in range(4))
        )
        assert all(h.results[0].hypotheses[0].text for h in healthy)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "decode step failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # the cause: ONNX Runtime's own error, with its traceback
    assert "Gather" in str(failures[0].exc_info[1]) or "indices" in str(failures[0].exc_info[1]).lower()
