"""A small typed client for the Translator service, sync (`TranslatorClient`) and asyncio
(`AsyncTranslatorClient`), returning plain dataclasses instead of protobuf messages.

    with TranslatorClient("localhost:50051") as client:
        print(client.translate_one("24 November 2026", beam_size=5).text)

Errors are grpc.RpcError as usual; `describe_error(err)` turns one into a readable line that
includes the server's field violations and retry hints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

FINISH_REASONS = {pb.FINISH_REASON_EOS: "eos", pb.FINISH_REASON_MAX_LENGTH: "max_length"}


@dataclass(frozen=True)
class Hypothesis:
    text: str
    tokens: list[str]
    token_ids: list[int]
    token_log_probs: list[float]
    score: float  # length-normalised; ranks hypotheses
    raw_score: float
    finish_reason: str  # "eos" | "max_length"
    unk_replaced: bool
    attention: np.ndarray | None  # (output tokens, source tokens) when asked for
    source_tokens: list[str]
    target_tokens: list[str]


@dataclass(frozen=True)
class Translation:
    hypotheses: list[Hypothesis]  # best first
    source_tokens: list[str]
    source_unknown_tokens: int

    @property
    def text(self) -> str:
        return self.hypotheses[0].text


@dataclass(frozen=True)
class StreamToken:
    index: int
    token_id: int
    token: str
    text: str  # output so far
    log_prob: float | None  # None for beam-search prefix tokens
    attention: np.ndarray | None  # (source tokens,) when asked for
    unk_replaced: bool


def _hypothesis(message: pb.Hypothesis) -> Hypothesis:
    att = message.attention
    matrix = np.asarray(att.values, dtype=np.float32).reshape(att.rows, att.cols) if att.rows else None
    return Hypothesis(
        text=message.text,
        tokens=list(message.tokens),
        token_ids=list(message.token_ids),
        token_log_probs=list(message.token_log_probs),
        score=message.score,
        raw_score=message.raw_score,
        finish_reason=FINISH_REASONS.get(message.finish_reason, "unspecified"),
        unk_replaced=message.unk_replaced,
        attention=matrix,
        source_tokens=list(att.source_tokens),
        target_tokens=list(att.target_tokens),
    )


def _translation(message: pb.TranslationResult) -> Translation:
    return Translation(
        hypotheses=[_hypothesis(h) for h in message.hypotheses],
        source_tokens=list(message.source_tokens),
        source_unknown_tokens=message.source_unknown_tokens,
    )


def _stream_item(message: pb.TranslateStreamResponse) -> StreamToken | Translation:
    if message.HasField("result"):
        return _translation(message.result.result)
    token = message.token
    return StreamToken(
        index=token.index,
        token_id=token.token_id,
        token=token.token,
        text=token.text,
        log_prob=token.log_prob if token.HasField("log_prob") else None,
        attention=np.asarray(token.attention, dtype=np.float32) if token.attention else None,
        unk_replaced=token.unk_replaced,
    )


def decode_options(
    beam_size: int | None = None,
    n_best: int | None = None,
    max_length: int | None = None,
    max_length_ratio: float | None = None,
    length_penalty: float | None = None,
    attention: bool = False,
    replace_unk: bool = False,
) -> pb.DecodeOptions:
    """DecodeOptions with only the given fields set (unset ones take the server's defaults)."""
    given = {
        "beam_size": beam_size,
        "n_best": n_best,
        "max_length": max_length,
        "max_length_ratio": max_length_ratio,
        "length_penalty": length_penalty,
    }
    return pb.DecodeOptions(
        **{k: v for k, v in given.items() if v is not None},
        return_attention=attention,
        replace_unk=replace_unk,
    )


def model_spec(model: str | None) -> pb.ModelSpec:
    """ "name" or "name/version" -> ModelSpec; None -> the server's default model."""
    name, _, version = (model or "").partition("/")
    return pb.ModelSpec(name=name, version=version)


def describe_error(error: grpc.RpcError) -> str:
    """`CODE: message` plus the google.rpc details the server attached (sync or aio errors)."""
    if not callable(getattr(error, "code", None)):  # an RpcError that is not a finished call
        return f"ERROR: {error}"
    text = f"{error.code().name}: {error.details()}"
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        bad, retry = error_details_pb2.BadRequest(), error_details_pb2.RetryInfo()
        if detail.Unpack(bad):
            text += "".join(f"\n  {v.field}: {v.description}" for v in bad.field_violations)
        elif detail.Unpack(retry):
            text += f"\n  retry after {retry.retry_delay.ToMilliseconds()} ms"
    return text


class TranslatorClient:
    """Blocking client. Options are keyword arguments of `decode_options`."""

    def __init__(self, target: str = "localhost:50051", timeout: float | None = None):
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.TranslatorStub(self.channel)
        self.timeout = timeout  # seconds per call; None = no deadline

    def translate(self, texts: Sequence[str], model: str | None = None, **options: Any) -> list[Translation]:
        request = pb.TranslateRequest(
            texts=list(texts), options=decode_options(**options), model=model_spec(model)
        )
        return [_translation(r) for r in self.stub.Translate(request, timeout=self.timeout).results]

    def translate_one(self, text: str, model: str | None = None, **options: Any) -> Translation:
        return self.translate([text], model, **options)[0]

    def stream(
        self, text: str, model: str | None = None, **options: Any
    ) -> Iterator[StreamToken | Translation]:
        """StreamToken items as tokens become final, then the Translation."""
        request = pb.TranslateStreamRequest(
            text=text, options=decode_options(**options), model=model_spec(model)
        )
        call = self.stub.TranslateStream(request, timeout=self.timeout)
        try:
            for message in call:
                yield _stream_item(message)
        finally:
            call.cancel()  # no-op once finished; stops the server's work if the caller stops early

    def model_info(self, model: str | None = None) -> pb.ModelInfo:
        return self.stub.GetModelInfo(pb.GetModelInfoRequest(model=model_spec(model)), timeout=self.timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> TranslatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTranslatorClient:
    """asyncio client (grpc.aio); same methods as TranslatorClient, awaited."""

    def __init__(self, target: str = "localhost:50051", timeout: float | None = None):
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.TranslatorStub(self.channel)
        self.timeout = timeout

    async def translate(
        self, texts: Sequence[str], model: str | None = None, **options: Any
    ) -> list[Translation]:
        request = pb.TranslateRequest(
            texts=list(texts), options=decode_options(**options), model=model_spec(model)
        )
        response = await self.stub.Translate(request, timeout=self.timeout)
        return [_translation(r) for r in response.results]

    async def translate_one(self, text: str, model: str | None = None, **options: Any) -> Translation:
        return (await self.translate([text], model, **options))[0]

    async def stream(
        self, text: str, model: str | None = None, **options: Any
    ) -> AsyncIterator[StreamToken | Translation]:
        request = pb.TranslateStreamRequest(
            text=text, options=decode_options(**options), model=model_spec(model)
        )
        call = self.stub.TranslateStream(request, timeout=self.timeout)
        try:
            async for message in call:
                yield _stream_item(message)
        finally:
            call.cancel()  # no-op once finished; stops the server's work if the caller stops early

    async def model_info(self, model: str | None = None) -> pb.ModelInfo:
        return await self.stub.GetModelInfo(
            pb.GetModelInfoRequest(model=model_spec(model)), timeout=self.timeout
        )

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncTranslatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
