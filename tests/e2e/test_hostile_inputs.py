"""Regression tests for the defects an outside tester found (issue 13), each against a real server:
what comes back, how it is counted, and that nothing is logged as an error or left unanswered."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from e2e_support import ENDLESS_MODEL, E2EModels, e2e_config, until
from local_server import sample, scrape_settled_async
from raw_h2 import RawConnection, call, grpc_frame

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.server import RunningServer, running_server

TRANSLATE = "/s2s.v1.Translator/Translate"
INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.fixture
async def measured(models: E2EModels) -> AsyncIterator[RunningServer]:
    async with running_server(e2e_config(models, metrics_port=0)) as running:
        yield running


async def _handled(server: RunningServer, code: str) -> float:
    scraped = await scrape_settled_async(server.metrics_server.url)
    return sample(scraped, "grpc_server_handled_total", grpc_method="Translate", grpc_code=code)


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("beam", [1, 4])
async def test_a_huge_length_penalty_is_invalid_not_an_overflow(stub: pb_grpc.TranslatorStub, stream, beam):
    options = pb.DecodeOptions(beam_size=beam, length_penalty=750)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if stream:
            async for _ in stub.TranslateStream(
                pb.TranslateStreamRequest(text="1 May 2001", options=options)
            ):
                pass
        else:
            await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"], options=options), timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "options.length_penalty" in caught.value.details()
    # The largest accepted one decodes.
    answer = await stub.Translate(
        pb.TranslateRequest(
            texts=["1 May 2001"], options=pb.DecodeOptions(beam_size=beam, length_penalty=10)
        ),
        timeout=30,
    )
    assert answer.results[0].hypotheses


@pytest.mark.parametrize(
    "body", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x12\x03\x08"], ids=["junk", "short", "nested"]
)
async def test_a_message_that_does_not_parse_is_invalid_counted_and_not_logged(
    measured: RunningServer, caplog: pytest.LogCaptureFixture, body: bytes
):
    before = await _handled(measured, "INVALID_ARGUMENT")
    async with grpc.aio.insecure_channel(measured.address) as channel:
        raw = channel.unary_unary(TRANSLATE)  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(body, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in caught.value.details()
    assert await _handled(measured, "INVALID_ARGUMENT") == before + 1
    assert await _handled(measured, "UNKNOWN") == 0
    assert not _errors(caplog)


async def test_a_long_model_name_is_not_found_with_a_bounded_message(stub: pb_grpc.TranslatorStub):
    for length in (100, 3_000, 8_000):  # 2 x 8,000 bytes: under the e2e server's receive limit
        request = pb.TranslateRequest(
            texts=["1 May 2001"], model=pb.ModelSpec(name="m" * length, version="v" * length)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(request, timeout=10)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND, caught.value.details()
        assert len(caught.value.details()) < 400 and f"({length} characters)" in caught.value.details()


async def test_a_message_over_the_receive_limit_is_refused_before_it_is_parsed(models: E2EModels):
    config = e2e_config(models)  # 16 texts of 100 characters: a limit of about 22 KB
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        empty_texts = pb.TranslateRequest(texts=[""] * (config.receive_limit // 2 + 1))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(empty_texts, timeout=10)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        # Under the limit, the count is checked before any text is looked at.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(pb.TranslateRequest(texts=[""] * 5_000), timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "5000 texts" in caught.value.details()
        full = pb.TranslateRequest(texts=["1" * config.max_text_chars] * config.max_texts)
        assert full.ByteSize() < config.receive_limit  # the largest valid request still fits
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(full, timeout=30)
        assert "tokens; the limit is" in caught.value.details()  # refused for its tokens, not its size


async def test_calls_that_end_without_a_whole_message_are_answered(measured: RunningServer, caplog):
    port = measured.port
    bodies = {
        "no DATA": b"",
        "short prefix": b"\x00\x00",
        "prefix promises more": grpc_frame(b"\x0a\x0a1 May 2001")[:-3],
        "empty message then junk": b"\x00\x00\x00\x00\x00\xff",
    }
    for name, body in bodies.items():
        answer = await asyncio.to_thread(call, port, TRANSLATE, body)
        assert answer.status is not None, f"{name}: never answered"
        assert answer.status != grpc.StatusCode.UNKNOWN.value[0], f"{name}: {answer}"
    # Many at once on one connection: every one answered, nothing left open.
    connection = RawConnection(port)
    try:
        streams = {connection.start(TRANSLATE, b"") for _ in range(50)}
        answers = await asyncio.to_thread(connection.answers, streams, 20)
    finally:
        connection.close()
    assert set(answers) == streams and {a.status for a in answers.values()} == {INVALID}
    await until(lambda: measured.gate.in_progress == 0)
    assert not _errors(caplog)


async def test_a_deadline_that_passes_while_the_request_is_read_is_deadline_exceeded(
    measured: RunningServer, caplog: pytest.LogCaptureFixture
):
    # The request's last bytes never come: its deadline passes while the gate still reads it.
    # grpc.aio's read returns EOF for a call that ended without a whole message (INVALID_ARGUMENT,
    # the test above); a call whose deadline passed mid-read is the deadline, not a bad request.
    connection = RawConnection(measured.port)
    try:
        halves = [grpc_frame(b"\x0a\x0a1 May 2001")[:-3], b""]
        streams = {connection.start(TRANSLATE, body, end=False, timeout="100m") for body in halves}
        answers = await asyncio.to_thread(connection.answers, streams, 20)
    finally:
        connection.close()
    deadline_exceeded = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert set(answers) == streams and {a.status for a in answers.values()} == {deadline_exceeded}
    await until(lambda: measured.gate.in_progress == 0)
    assert await _handled(measured, "DEADLINE_EXCEEDED") == 2
    assert await _handled(measured, "INVALID_ARGUMENT") == 0
    assert not _errors(caplog)


async def test_a_deadline_that_passes_mid_step_is_deadline_exceeded_and_not_logged(
    measured: RunningServer, caplog: pytest.LogCaptureFixture
):
    # 512 steps of an endless model: far longer than any of the deadlines below.
    options = pb.DecodeOptions(beam_size=2, max_length=512)
    request = pb.TranslateRequest(
        texts=["1 May 2001"] * 4, options=options, model=pb.ModelSpec(name=ENDLESS_MODEL)
    )
    async with grpc.aio.insecure_channel(measured.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)

        async def late(timeout: float) -> grpc.StatusCode:
            try:
                await stub.Translate(request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(late(0.02 + 0.005 * i) for i in range(20)))
    assert set(codes) == {grpc.StatusCode.DEADLINE_EXCEEDED}

    reasons = ("deadline", "cancelled", "eos", "max_length", "error")

    async def finished() -> dict[str, float]:
        scraped = await scrape_settled_async(measured.metrics_server.url)
        return {r: sample(scraped, "s2s_requests_finished_total", model=ENDLESS_MODEL, reason=r)
                for r in reasons}  # fmt: skip

    # Under load a call may expire before any of its texts reach the scheduler (gRPC cancels it
    # before dispatch): what is counted is what was received, and all of it as the deadline.
    scraped = await scrape_settled_async(measured.metrics_server.url)
    received = sample(scraped, "s2s_requests_received_total", model=ENDLESS_MODEL)
    assert received > 0
    waited_until = time.monotonic() + 30
    while sum((counts := await finished()).values()) < received:  # rows leave within a step
        assert time.monotonic() < waited_until, {"received": received, **counts}
        await asyncio.sleep(0.01)
    assert counts["deadline"] == received and counts["cancelled"] == 0
    scraped = await scrape_settled_async(measured.metrics_server.url)
    started = sample(scraped, "grpc_server_started_total", grpc_method="Translate")
    late = sample(
        scraped, "grpc_server_handled_total", grpc_method="Translate", grpc_code="DEADLINE_EXCEEDED"
    )
    handled = {
        dict(labels)["grpc_code"]: value
        for (name, labels), value in scraped.items()
        if name == "grpc_server_handled_total" and dict(labels)["grpc_method"] == "Translate"
    }
    counted = {code: value for code, value in handled.items() if value}
    assert 0 < started == late, counted  # every call that reached a handler, as DEADLINE_EXCEEDED
    assert not _errors(caplog)
