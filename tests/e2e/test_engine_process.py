"""The decode engine in a process of its own (`--engine process`, issue 14): what the thread engine
proves, proved again across the process boundary (same answers, streaming, cancellation,
deadlines, drain, metrics), and what only a process can do: die. Then its calls get UNAVAILABLE,
its model reports NOT_SERVING until a new engine serves, and the other models never notice."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from e2e_support import DEFAULT_MODEL, ENDLESS_MODEL, E2EModels, date_texts, e2e_config, until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from local_server import sample, scrape, scrape_settled_async

from engine.sessions import ProviderUnavailable
from s2s.bundle import BundleError
from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.engine_process import ProcessScheduler
from service.server import RunningServer, running_server

ENDLESS = pb.ModelSpec(name=ENDLESS_MODEL)


def _config(models: E2EModels, engine: str, **overrides):
    config = e2e_config(models, metrics_port=0, **overrides)
    return dataclasses.replace(config, scheduler=dataclasses.replace(config.scheduler, engine=engine))


@pytest.fixture
async def engine_server(models: E2EModels) -> AsyncIterator[RunningServer]:
    async with running_server(_config(models, "process")) as running:
        yield running


def _engine(server: RunningServer, name: str) -> ProcessScheduler:
    scheduler = server.registry.get(name).scheduler
    assert isinstance(scheduler, ProcessScheduler)
    return scheduler


def _answers(response: pb.TranslateResponse) -> list[tuple]:
    return [
        (h.text, tuple(h.token_ids), round(h.score, 4), tuple(round(v, 4) for v in h.attention.values))
        for result in response.results
        for h in result.hypotheses
    ]


@pytest.mark.parametrize("options", [pb.DecodeOptions(), pb.DecodeOptions(beam_size=4, n_best=2)])
async def test_the_process_engine_answers_as_the_thread_engine_does(models: E2EModels, options):
    options.return_attention = True
    request = pb.TranslateRequest(texts=date_texts(8), options=options)
    answers = {}
    for engine in ("thread", "process"):
        async with running_server(_config(models, engine)) as server:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.TranslatorStub(channel)
                alone = await stub.Translate(request, timeout=30)
                # Batch invariance across the boundary: the same texts among 7 other calls.
                together = await asyncio.gather(*(stub.Translate(request, timeout=30) for _ in range(8)))
                assert all(_answers(t) == _answers(alone) for t in together)
                answers[engine] = _answers(alone)
    assert answers["process"] == answers["thread"]
    assert any(a[3] for a in answers["process"])  # attention came back too


async def test_streaming_crosses_the_boundary(engine_server: RunningServer):
    async with grpc.aio.insecure_channel(engine_server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        request = pb.TranslateRequest(texts=["1 May 2001"], options=pb.DecodeOptions(beam_size=3))
        unary = await stub.Translate(request, timeout=30)
        stream = stub.TranslateStream(
            pb.TranslateStreamRequest(text="1 May 2001", options=pb.DecodeOptions(beam_size=3)), timeout=30
        )
        tokens, final = [], None
        async for message in stream:
            if message.HasField("token"):
                tokens.append(message.token.token_id)
            else:
                final = message.result.result
    best = unary.results[0].hypotheses[0]
    assert final is not None and tuple(final.hypotheses[0].token_ids) == tuple(best.token_ids)
    assert tuple(tokens) == tuple(best.token_ids)


async def test_cancellation_and_deadlines_free_the_engines_rows(engine_server: RunningServer):
    url = engine_server.metrics_server.url
    filler = pb.TranslateRequest(
        texts=["1 May 2001"] * 4, options=pb.DecodeOptions(max_length=512), model=ENDLESS
    )
    # Decoded beside the filler, 512 steps of 20 rows: far longer than its 50 ms deadline.
    late = pb.TranslateRequest(
        texts=["2 June 2002"] * 4, options=pb.DecodeOptions(beam_size=4, max_length=512), model=ENDLESS
    )

    def metric(name: str, **labels: str) -> float:
        # A plain scrape: the server runs on this test's event loop, and scrape_settled's wait
        # for calls still in flight would block the very loop that must finish them.
        return sample(scrape(url), name, model=ENDLESS_MODEL, **labels)

    async with grpc.aio.insecure_channel(engine_server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        call = stub.Translate(filler, timeout=60)
        engine = _engine(engine_server, ENDLESS_MODEL)
        await until(lambda: engine.running_requests == 4)
        for _ in range(5):  # on a loaded machine a short deadline may pass before the call is read
            with pytest.raises(grpc.aio.AioRpcError) as expired:
                await stub.Translate(late, timeout=0.05)
            assert expired.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            if metric("s2s_requests_received_total") > 4:
                break
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    await until(lambda: engine.running_requests == 0)  # the server has seen the cancel
    late_received = metric("s2s_requests_received_total") - 4
    assert late_received >= 4, "no late call reached the engine in 5 tries"
    reasons = ("cancelled", "deadline", "eos", "max_length", "error")

    def finished(reason: str) -> float:
        return metric("s2s_requests_finished_total", reason=reason)

    def settled() -> bool:  # the filler's 4 as cancelled, every late text received as the deadline
        return finished("cancelled") == 4 and finished("deadline") == late_received

    try:
        await until(settled)
    except AssertionError:
        raise AssertionError({"late_received": late_received, **{r: finished(r) for r in reasons}}) from None
    await until(lambda: metric("s2s_running_rows") == 0)
    assert engine.running_requests == 0 and engine.queued_rows == 0


async def test_a_drain_completes_what_the_engine_holds(models: E2EModels):
    heavy = pb.TranslateRequest(texts=date_texts(8), options=pb.DecodeOptions(beam_size=4, max_length=64),
                                model=ENDLESS)  # fmt: skip
    async with running_server(_config(models, "process")) as server:
        channel = grpc.aio.insecure_channel(server.address)
        stub = pb_grpc.TranslatorStub(channel)
        calls = [asyncio.ensure_future(stub.Translate(heavy, timeout=60)) for _ in range(6)]
        engine = _engine(server, ENDLESS_MODEL)
        await until(lambda: engine.running_requests + engine.queued == 48)  # every call received
        pid = engine.engine_pid
        await server.stop()
        answers = await asyncio.gather(*calls)
        await channel.close()
    assert all(len(a.results) == 8 and len(a.results[0].hypotheses[0].token_ids) == 64 for a in answers)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the engine stopped with the server


async def test_a_dead_engine_fails_its_calls_with_unavailable_and_is_restarted(
    engine_server: RunningServer, caplog: pytest.LogCaptureFixture
):
    endless = pb.TranslateRequest(
        texts=["1 May 2001"] * 2, options=pb.DecodeOptions(max_length=512), model=ENDLESS
    )
    async with grpc.aio.insecure_channel(engine_server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        engine = _engine(engine_server, ENDLESS_MODEL)
        seen: list[int] = []

        async def watch() -> None:  # the health of the endless model, as a Watch client sees it
            name = f"s2s.v1.Translator/{ENDLESS_MODEL}"
            async for reply in health.Watch(health_pb2.HealthCheckRequest(service=name)):
                seen.append(reply.status)

        watcher = asyncio.ensure_future(watch())
        calls = [asyncio.ensure_future(stub.Translate(endless, timeout=60)) for _ in range(3)]
        await until(lambda: engine.running_requests == 6)
        pid = engine.engine_pid
        os.kill(pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert [o.code() for o in outcomes] == [grpc.StatusCode.UNAVAILABLE] * 3
        await until(lambda: engine.serving and engine.engine_pid not in (None, pid))
        again = await stub.Translate(
            pb.TranslateRequest(texts=["2 June 2002"], options=pb.DecodeOptions(max_length=3), model=ENDLESS),
            timeout=30,
        )
        assert len(again.results[0].hypotheses[0].token_ids) == 3
        other = await stub.Translate(pb.TranslateRequest(texts=["3 July 2003"]), timeout=30)
        assert other.model.name == DEFAULT_MODEL and other.results[0].hypotheses[0].text
        await until(lambda: seen[-1:] == [health_pb2.HealthCheckResponse.SERVING])
        watcher.cancel()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert not_serving in seen[seen.index(serving) :]  # it went down, then back up
    scraped = await scrape_settled_async(engine_server.metrics_server.url)
    assert sample(scraped, "s2s_engine_restarts_total", model=ENDLESS_MODEL) == 1
    assert sample(scraped, "s2s_engine_restarts_total", model=DEFAULT_MODEL) == 0
    assert sample(scraped, "s2s_requests_finished_total", model=ENDLESS_MODEL, reason="error") == 6
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "exited" in errors[0].getMessage()


async def test_an_engine_that_cannot_load_refuses_the_start_with_the_reason(models: E2EModels):
    config = _config(models, "process")
    no_gpu = dataclasses.replace(config.runner, provider="cuda", require_provider=True)
    with pytest.raises(ProviderUnavailable, match="CUDA"):
        async with running_server(dataclasses.replace(config, runner=no_gpu)):
            pass


async def test_a_refused_start_leaves_no_engine_behind(models: E2EModels, tmp_path):
    from bundle_tools import copy_bundle

    broken = copy_bundle(models.bundle, tmp_path, name="broken")
    (broken / "decoder_step.onnx").write_bytes(b"not a graph")  # the checksum check refuses it
    before = _engine_pids()
    with pytest.raises(BundleError):
        async with running_server(_config(models, "process", bundles=(models.bundle, broken))):
            pass
    assert _engine_pids() == before  # the first model's engine was started, then stopped


def _engine_pids() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if b"service.engine_worker" in fh.read():
                        found.add(int(entry))
            except OSError:
                pass
    return found


def test_a_killed_server_leaves_no_engine_behind(models: E2EModels, tmp_path):
    from local_server import VENV_BIN, ServerProcess, free_port, wait_serving

    port = free_port()
    args = [str(VENV_BIN / "s2s"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--metrics-port", "off", "--bundle", str(models.bundle), "--engine", "process"]  # fmt: skip
    before = _engine_pids()
    with ServerProcess(args, dict(os.environ), tmp_path, tmp_path / "serve.log") as server:
        wait_serving(server, port)
        engines = _engine_pids() - before
        assert len(engines) == 1, server.log()
        server.process.send_signal(signal.SIGKILL)  # no drain, no goodbye: only EOF on its pipe
        server.process.wait()
        deadline = time.monotonic() + 30
        while engines & _engine_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not engines & _engine_pids()  # the engine saw EOF and exited
