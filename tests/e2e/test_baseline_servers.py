"""The benchmark's baseline servers (benchmarks/serving/baseline_servers.py) as real subprocesses: the
worker-pool server must answer exactly what the s2s server answers (a baseline that decoded
differently would not be a baseline), and bad input gets the same status code."""

from __future__ import annotations

import grpc
import pytest
from e2e_support import E2EModels, date_texts

from benchmarks.serving.variants import DecodeSetup, GrpcPool
from s2s.bundle import load_bundle
from service.client import AsyncTranslatorClient
from service.server import RunningServer


async def test_pool_server_answers_what_the_s2s_server_answers(
    models: E2EModels, server: RunningServer, client: AsyncTranslatorClient
) -> None:
    baseline = GrpcPool(load_bundle(models.bundle), DecodeSetup())  # starts it, waits for SERVING
    try:
        await baseline.start()  # sets the client before waiting: stop() below always works
        pool = baseline.client
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
        await baseline.stop()
