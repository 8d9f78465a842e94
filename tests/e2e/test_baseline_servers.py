"""The benchmark's baseline servers (benchmarks/serving/baseline_servers.py) as real subprocesses: the
worker-pool server must answer exactly what the s2s server answers (a baseline that decoded
differently would not be a baseline), and bad input gets the same status code."""

from __future__ import annotations

import grpc
import pytest
from e2e_support import E2EModels, date_texts

from benchmarks.serving.variants import DecodeSetup, GrpcPool, _free_port
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


def test_floor_waits_as_asked_and_refuses_a_negative_wait() -> None:
    """benchmarks/serving/wait_floor.py's server: every answer comes no sooner than its wait (a
    lower bound, not a speed target), and a negative wait is a usage error."""
    import subprocess
    import sys

    from benchmarks.serving.wait_floor import ROOT, measure

    assert measure(20.0, _free_port(), calls=10) >= 20.0
    command = [sys.executable, "-m", "benchmarks.serving.baseline_servers", "--kind", "floor",
               "--port", "1", "--wait-ms", "-1"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--wait-ms must be >= 0" in done.stderr


@pytest.mark.parametrize("layered", [False, True])
async def test_the_layered_floor_stands_behind_the_s2s_gate(models: E2EModels, layered: bool) -> None:
    """`--layers` puts the s2s server's own interceptor and gate in front of the floor: a request
    that does not parse is refused there, as `s2s serve` refuses it; the plain floor has no gate."""
    from benchmarks.serving.variants import GrpcFloor, GrpcFloorLayers

    floor = (GrpcFloorLayers if layered else GrpcFloor)(load_bundle(models.bundle), DecodeSetup())
    try:
        await floor.start()
        answer = await floor.client.translate_one("5 March 2021")
        assert answer.hypotheses[0].text  # the canned translation
        raw = floor.client.channel.unary_unary("/s2s.v1.Translator/Translate")  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await raw(b"\xff\xff\xff", timeout=10)
        # grpc.aio's own answer is UNKNOWN with the parser's exception in the details.
        expected = grpc.StatusCode.INVALID_ARGUMENT if layered else grpc.StatusCode.UNKNOWN
        assert bad.value.code() == expected, bad.value.details()
        assert ("DecodeError" in bad.value.details()) is not layered
    finally:
        await floor.stop()


def test_the_tcp_baseline_waits_as_asked() -> None:
    """wait_floor's plain-socket baseline: each answer comes no sooner than its wait (a bound)."""
    from benchmarks.serving.wait_floor import measure_tcp

    assert measure_tcp(20.0, calls=10) >= 20.0
    assert measure_tcp(0.0, calls=10) < 20.0
