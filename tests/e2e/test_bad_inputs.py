"""The table of bad inputs: each gets its status code (and the field it names), and the server
keeps serving afterwards."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import grpc
import pytest
from e2e_support import DEFAULT_MODEL, ENDLESS_MODEL, E2EModels, e2e_config, until
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.scheduler import SchedulerConfig
from service.server import running_server

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@dataclass(frozen=True)
class Case:
    texts: tuple[str, ...] = ("1 May 2001",)
    options: pb.DecodeOptions = field(default_factory=pb.DecodeOptions)
    model: pb.ModelSpec = field(default_factory=pb.ModelSpec)
    code: grpc.StatusCode = INVALID
    violation: str | None = None  # the BadRequest field violation expected for INVALID_ARGUMENT


# Limits of e2e_config: max_texts 16, max_text_chars 100, max_src_tokens 64, max_beam 8,
# max_output_len 512.
CASES = {
    "empty text": Case(texts=("",), violation="texts[0]"),
    "only whitespace": Case(texts=("1 May 2001", " \t\n "), violation="texts[1]"),
    "over the character limit": Case(texts=("1" * 101,), violation="texts[0]"),
    "over the token limit": Case(texts=("1 " * 40,), violation="texts[0]"),  # 79 chars, 79 tokens > 64
    "NUL byte": Case(texts=("1 May\x002001",), violation="texts[0]"),
    "no texts": Case(texts=(), violation="texts"),
    "too many texts": Case(texts=("1 May 2001",) * 17, violation="texts"),
    "beam 0": Case(options=pb.DecodeOptions(beam_size=0), violation="options.beam_size"),
    "beam over the limit": Case(options=pb.DecodeOptions(beam_size=9), violation="options.beam_size"),
    "n_best above beam": Case(options=pb.DecodeOptions(beam_size=2, n_best=3), violation="options.n_best"),
    "max length 0": Case(options=pb.DecodeOptions(max_length=0), violation="options.max_length"),
    "max length huge": Case(options=pb.DecodeOptions(max_length=2**31 - 1), violation="options.max_length"),
    "negative length penalty": Case(
        options=pb.DecodeOptions(length_penalty=-0.5), violation="options.length_penalty"
    ),
    "negative length ratio": Case(
        options=pb.DecodeOptions(max_length_ratio=-1), violation="options.max_length_ratio"
    ),
    "length penalty over the limit": Case(
        options=pb.DecodeOptions(length_penalty=10.5), violation="options.length_penalty"
    ),
    # 16 texts x beam 8 x 512 output x 55 source tokens = 3.6M attention values > 1M
    "attention over the budget": Case(
        texts=("1 May 2001 " * 5,) * 16,
        options=pb.DecodeOptions(beam_size=8, max_length=512, return_attention=True),
        violation="options.return_attention",
    ),
    "unknown model": Case(model=pb.ModelSpec(name="klingon"), code=grpc.StatusCode.NOT_FOUND),
    "unknown version": Case(
        model=pb.ModelSpec(name=DEFAULT_MODEL, version="7"), code=grpc.StatusCode.NOT_FOUND
    ),
    "emoji and unseen scripts (not an error)": Case(texts=("🙂 1 Май 2001 ☃",), code=grpc.StatusCode.OK),
}


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "INVALID_ARGUMENT must carry google.rpc.Status details"
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad), "INVALID_ARGUMENT must carry google.rpc.BadRequest"
    return {v.field: v.description for v in bad.field_violations}


async def _assert_still_serving(stub: pb_grpc.TranslatorStub) -> None:
    response = await stub.Translate(pb.TranslateRequest(texts=["2 May 2002"]), timeout=30)
    assert response.results[0].hypotheses[0].text


@pytest.mark.parametrize("name", list(CASES))
async def test_unary_bad_input(stub: pb_grpc.TranslatorStub, name: str) -> None:
    case = CASES[name]
    request = pb.TranslateRequest(texts=case.texts, options=case.options, model=case.model)
    if case.code is grpc.StatusCode.OK:
        response = await stub.Translate(request, timeout=30)
        assert response.results[0].source_unknown_tokens > 0
    else:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(request, timeout=30)
        assert caught.value.code() == case.code, caught.value.details()
        if case.violation is not None:
            assert case.violation in _violations(caught.value), caught.value.details()
    await _assert_still_serving(stub)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if len(c.texts) == 1])
async def test_stream_bad_input(stub: pb_grpc.TranslatorStub, name: str) -> None:
    case = CASES[name]
    request = pb.TranslateStreamRequest(text=case.texts[0], options=case.options, model=case.model)
    call = stub.TranslateStream(request, timeout=30)
    if case.code is grpc.StatusCode.OK:
        messages = [m async for m in call]
        assert messages[-1].result.result.source_unknown_tokens > 0
    else:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [m async for m in call]  # noqa: B018 - drain the stream
        assert caught.value.code() == case.code, caught.value.details()
        if case.violation is not None:
            assert case.violation.replace("texts[0]", "text") in _violations(caught.value)
    await _assert_still_serving(stub)


@pytest.mark.parametrize("rpc", ["unary", "stream"])
async def test_a_1ms_deadline_is_deadline_exceeded(stub: pb_grpc.TranslatorStub, rpc: str) -> None:
    options = pb.DecodeOptions(beam_size=4, max_length=500)  # the endless model needs 500 steps
    model = pb.ModelSpec(name=ENDLESS_MODEL)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "unary":
            await stub.Translate(
                pb.TranslateRequest(texts=["1 May 2001"], options=options, model=model), timeout=0.001
            )
        else:
            request = pb.TranslateStreamRequest(text="1 May 2001", options=options, model=model)
            [m async for m in stub.TranslateStream(request, timeout=0.001)]  # noqa: B018
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _assert_still_serving(stub)


async def test_a_full_queue_is_resource_exhausted_with_retry_info(models: E2EModels) -> None:
    config = e2e_config(models, scheduler=SchedulerConfig(max_rows=8, max_queue=2, max_beam=8))
    async with running_server(config) as server, grpc.aio.insecure_channel(server.address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        endless = pb.ModelSpec(name=ENDLESS_MODEL)
        scheduler = server.registry.get(ENDLESS_MODEL).scheduler
        # One beam-8 call fills the batch's 8 rows; a 2-text call then fills the queue's 2 rows.
        filling = asyncio.ensure_future(
            stub.Translate(
                pb.TranslateRequest(
                    texts=["1 May 2001"], model=endless, options=pb.DecodeOptions(beam_size=8)
                ),
                timeout=60,
            )
        )
        await until(lambda: scheduler.running_requests == 1)
        waiting = asyncio.ensure_future(
            stub.Translate(pb.TranslateRequest(texts=["1 May 2001"] * 2, model=endless), timeout=60)
        )
        await until(lambda: scheduler.queued_rows == 2)
        # One more row does not fit: refused at once, whole, with a retry hint.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Translate(pb.TranslateRequest(texts=["1 May 2001"], model=endless), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry = error_details_pb2.RetryInfo()
        assert rpc_status.from_call(caught.value).details[0].Unpack(retry)
        assert retry.retry_delay.ToNanoseconds() > 0
        assert "2/2 decoder rows queued; this call needs 1" in caught.value.details()
        assert len((await filling).results) == 1 and len((await waiting).results) == 2  # accepted: done
        await _assert_still_serving(stub)
