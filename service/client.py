"""A small typed client for the Translator service, sync (`TranslatorClient`) and asyncio
(`AsyncTranslatorClient`), returning plain dataclasses instead of protobuf messages.

    with TranslatorClient("localhost:50051") as client:
        print(client.translate_one("24 November 2026", beam_size=5).text)

Errors are grpc.RpcError as usual; `describe_error(err)` turns one into a readable line that
includes the server's field violations and retry hints.

TLS: pass `credentials=service.tls.channel_credentials(ca, cert, key)` (cert and key for mutual
TLS) and, where the server's certificate names another host than the target, `server_name`.
Tokens: `token=...` is sent as `authorization: Bearer ...` on every call. Both clients ship
gRPC's retry policy for UNAVAILABLE (`SERVICE_CONFIG`): a call refused by a draining server, or
one whose connection failed before it started, is retried with backoff, on another address when
the target resolves to several (`ipv4:10.0.0.1:50051,10.0.0.2:50051` with round_robin).
"""

from __future__ import annotations

import json
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
MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # the server's send limit: attention of a full call fits

# gRPC retries a call only while no response has been committed, so a retried Translate or
# stream never duplicates output. UNAVAILABLE is what a draining server, a refused connection
# and a reset before the first message give; RESOURCE_EXHAUSTED is left to the caller, who has
# the server's RetryInfo.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": "s2s.v1.Translator"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    # Retries stop once failures outnumber successes by 50 lately: a service that is down gets
    # no retry storm, while a rolling restart (a burst of UNAVAILABLE) is ridden out.
    "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.5},
}


def channel_options(server_name: str | None = None, retry: bool = True) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
    if retry:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(SERVICE_CONFIG))]
    else:
        options += [("grpc.enable_retries", 0)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


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
    status = rpc_status.from_call(error)
    lines, violations = [], []
    for detail in status.details if status else []:
        bad, retry = error_details_pb2.BadRequest(), error_details_pb2.RetryInfo()
        if detail.Unpack(bad):
            violations = [f"  {v.field}: {v.description}" for v in bad.field_violations]
        elif detail.Unpack(retry):
            lines.append(f"  retry after {retry.retry_delay.ToMilliseconds()} ms")
    # The message of INVALID_ARGUMENT joins the violations: list them once, one a line.
    head = f"{error.code().name}: {'invalid request' if violations else error.details()}"
    return "\n".join([head, *violations, *lines])


class TranslatorClient:
    """Blocking client. Options are keyword arguments of `decode_options`."""

    def __init__(
        self,
        target: str = "localhost:50051",
        timeout: float | None = None,
        credentials: grpc.ChannelCredentials | None = None,  # None = plaintext
        token: str | None = None,
        server_name: str | None = None,  # the name the server's certificate carries, if not the target's
        retry: bool = True,  # SERVICE_CONFIG's retry policy
    ):
        options = channel_options(server_name, retry)
        self.channel = (
            grpc.secure_channel(target, credentials, options)
            if credentials is not None
            else grpc.insecure_channel(target, options)
        )
        self.stub = pb_grpc.TranslatorStub(self.channel)
        self.timeout = timeout  # seconds per call; None = no deadline
        self.metadata = auth_metadata(token)

    def translate(self, texts: Sequence[str], model: str | None = None, **options: Any) -> list[Translation]:
        request = pb.TranslateRequest(
            texts=list(texts), options=decode_options(**options), model=model_spec(model)
        )
        response = self.stub.Translate(request, timeout=self.timeout, metadata=self.metadata)
        return [_translation(r) for r in response.results]

    def translate_one(self, text: str, model: str | None = None, **options: Any) -> Translation:
        return self.translate([text], model, **options)[0]

    def stream(
        self, text: str, model: str | None = None, **options: Any
    ) -> Iterator[StreamToken | Translation]:
        """StreamToken items as tokens become final, then the Translation."""
        request = pb.TranslateStreamRequest(
            text=text, options=decode_options(**options), model=model_spec(model)
        )
        call = self.stub.TranslateStream(request, timeout=self.timeout, metadata=self.metadata)
        try:
            for message in call:
                yield _stream_item(message)
        finally:
            call.cancel()  # no-op once finished; stops the server's work if the caller stops early

    def model_info(self, model: str | None = None) -> pb.ModelInfo:
        return self.stub.GetModelInfo(
            pb.GetModelInfoRequest(model=model_spec(model)), timeout=self.timeout, metadata=self.metadata
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> TranslatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTranslatorClient:
    """asyncio client (grpc.aio); same methods as TranslatorClient, awaited."""

    def __init__(
        self,
        target: str = "localhost:50051",
        timeout: float | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        server_name: str | None = None,
        retry: bool = True,
    ):
        options = channel_options(server_name, retry)
        self.channel = (
            grpc.aio.secure_channel(target, credentials, options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options)
        )
        self.stub = pb_grpc.TranslatorStub(self.channel)
        self.timeout = timeout
        self.metadata = auth_metadata(token)

    async def translate(
        self, texts: Sequence[str], model: str | None = None, **options: Any
    ) -> list[Translation]:
        request = pb.TranslateRequest(
            texts=list(texts), options=decode_options(**options), model=model_spec(model)
        )
        response = await self.stub.Translate(request, timeout=self.timeout, metadata=self.metadata)
        return [_translation(r) for r in response.results]

    async def translate_one(self, text: str, model: str | None = None, **options: Any) -> Translation:
        return (await self.translate([text], model, **options))[0]

    async def stream(
        self, text: str, model: str | None = None, **options: Any
    ) -> AsyncIterator[StreamToken | Translation]:
        request = pb.TranslateStreamRequest(
            text=text, options=decode_options(**options), model=model_spec(model)
        )
        call = self.stub.TranslateStream(request, timeout=self.timeout, metadata=self.metadata)
        try:
            async for message in call:
                yield _stream_item(message)
        finally:
            call.cancel()  # no-op once finished; stops the server's work if the caller stops early

    async def model_info(self, model: str | None = None) -> pb.ModelInfo:
        return await self.stub.GetModelInfo(
            pb.GetModelInfoRequest(model=model_spec(model)), timeout=self.timeout, metadata=self.metadata
        )

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncTranslatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
