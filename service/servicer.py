"""The Translator gRPC service: validate, submit to the model's scheduler, await or stream back.

Thin on purpose: decoding lives in service/scheduler.py, message building in service/responses.py,
and every error becomes a status code in service/status.py (`@maps_service_errors`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service import call_info
from service.config import Limits
from service.errors import InvalidRequest
from service.handle import DecodeRequest, TokenEvent
from service.registry import LoadedModel, ModelRegistry
from service.responses import StreamText, translation_result
from service.status import deadline_passed, maps_service_errors
from service.validation import (
    DecodeSettings,
    Source,
    check_attention_budget,
    validate_options,
    validate_texts,
)


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline on the monotonic clock the scheduler uses; None when unbounded."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _decode_request(
    source: Source, settings: DecodeSettings, deadline: float | None, stream: bool
) -> DecodeRequest:
    decode = settings.decode
    return DecodeRequest(
        src_ids=source.ids,
        beam_size=decode.beam_size,
        n_best=decode.n_best,
        max_len=decode.max_len_for(len(source.ids)),
        length_penalty=decode.length_penalty,
        want_attention=decode.keep_attention,
        deadline=deadline,
        stream=stream,
    )


def _spec(model: LoadedModel) -> pb.ModelSpec:
    return pb.ModelSpec(name=model.name, version=model.version)


class TranslatorServicer(pb_grpc.TranslatorServicer):
    def __init__(self, registry: ModelRegistry, limits: Limits):
        self.registry = registry
        self.limits = limits

    def _validated(
        self, model: LoadedModel, options: pb.DecodeOptions, texts: Sequence[str], stream: bool
    ) -> tuple[DecodeSettings, list[Source]]:
        """Options and texts checked together: one InvalidRequest names every bad field."""
        call_info.note(model=f"{model.name}/{model.version}", texts=len(texts))
        bundle, bad = model.bundle, []
        try:
            settings = validate_options(options, self.limits, bundle.max_length, bundle.max_length_ratio)
        except InvalidRequest as exc:
            bad.extend(exc.violations)
        try:
            field, indexed = ("text", False) if stream else ("texts", True)
            sources = validate_texts(texts, bundle.src_tokenizer, self.limits, field, indexed)
        except InvalidRequest as exc:
            bad.extend(exc.violations)
        if bad:
            raise InvalidRequest(bad)
        check_attention_budget(settings, sources, self.limits)
        return settings, sources

    @maps_service_errors
    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext):
        model = self.registry.get(request.model.name, request.model.version)
        settings, sources = self._validated(model, request.options, request.texts, stream=False)
        deadline = _deadline(context)
        # All texts or none: the scheduler refuses a call whose rows do not fit, before any work.
        handles = model.scheduler.submit_all(
            [_decode_request(source, settings, deadline, False) for source in sources]
        )
        try:
            # All are decoding already; awaiting in order costs nothing and needs no extra tasks.
            results = [await handle.result() for handle in handles]
        finally:
            unfinished = [handle for handle in handles if not handle.done]
            if unfinished:  # an error or the client went away: free their rows
                late = deadline_passed(context)
                for handle in unfinished:
                    handle.cancel(late)
        tokenizer = model.bundle.tgt_tokenizer
        return pb.TranslateResponse(
            results=[
                translation_result(result.hypotheses, source, tokenizer, settings)
                for source, result in zip(sources, results, strict=True)
            ],
            model=_spec(model),
        )

    @maps_service_errors
    async def TranslateStream(self, request: pb.TranslateStreamRequest, context: grpc.aio.ServicerContext):
        model = self.registry.get(request.model.name, request.model.version)
        settings, [source] = self._validated(model, request.options, [request.text], stream=True)
        tokenizer = model.bundle.tgt_tokenizer
        handle = model.scheduler.submit(_decode_request(source, settings, _deadline(context), True))
        text = StreamText(source, tokenizer, settings)
        try:
            async for item in handle:
                if isinstance(item, TokenEvent):
                    for message in text.events(item.position, item.tokens, item.log_probs, item.attention):
                        yield message
                    continue
                # The Result: under beam search the best hypothesis' tail was not final until now.
                best = item.hypotheses[0]
                for message in text.events(0, best.tokens, best.token_log_probs, best.attention):
                    yield message
                result = translation_result(item.hypotheses, source, tokenizer, settings)
                yield pb.TranslateStreamResponse(result=pb.StreamResult(result=result, model=_spec(model)))
        finally:
            handle.cancel(deadline_passed(context))  # the client went away or an error: free the rows

    @maps_service_errors
    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext):
        model = self.registry.get(request.model.name, request.model.version)
        bundle, dims, limits = model.bundle, model.bundle.model, self.limits
        return pb.ModelInfo(
            name=bundle.name,
            version=bundle.version,
            cell=dims.cell,
            score=dims.score,
            layers=dims.layers,
            hidden=dims.hidden,
            bidirectional=dims.bidirectional,
            src_vocab_size=dims.src_vocab_size,
            tgt_vocab_size=dims.tgt_vocab_size,
            src_tokenizer=bundle.src_tokenizer.kind,
            tgt_tokenizer=bundle.tgt_tokenizer.kind,
            execution_provider=model.runner.provider,
            default_max_length=bundle.max_length,
            default_max_length_ratio=bundle.max_length_ratio,
            limits=pb.Limits(
                max_texts=limits.max_texts,
                max_text_chars=limits.max_text_chars,
                max_src_tokens=limits.max_src_tokens,
                max_beam=limits.max_beam,
                max_output_len=limits.max_output_len,
                max_attention_values=limits.max_attention_values,
            ),
            loaded_models=[_spec(m) for m in self.registry.models],
            created=bundle.created,
        )
