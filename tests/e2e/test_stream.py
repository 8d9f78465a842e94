"""TranslateStream against a real server: token by token, final result, cancellation."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from e2e_support import ENDLESS_MODEL

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.client import AsyncTranslatorClient, StreamToken, Translation
from service.server import RunningServer


async def _collect(
    client: AsyncTranslatorClient, text: str, **options
) -> tuple[list[StreamToken], Translation]:  # type: ignore[no-untyped-def]
    items = [item async for item in client.stream(text, **options)]
    *tokens, final = items
    assert isinstance(final, Translation), "the last stream message must be the result"
    assert all(isinstance(t, StreamToken) for t in tokens)
    return tokens, final  # type: ignore[return-value]


async def test_greedy_streams_one_message_per_token_then_the_result(client: AsyncTranslatorClient) -> None:
    tokens, final = await _collect(client, "12 March 2004")
    best = final.hypotheses[0]
    assert [t.index for t in tokens] == list(range(len(best.token_ids)))
    assert [t.token_id for t in tokens] == best.token_ids
    assert tokens[-1].text == best.text
    assert [t.text for t in tokens] == ["".join(best.tokens[: i + 1]) for i in range(len(tokens))]
    # Greedy knows each token's log-prob as it is decided.
    np.testing.assert_allclose([t.log_prob for t in tokens], best.token_log_probs, rtol=1e-6)
    unary = await client.translate_one("12 March 2004")
    assert unary.hypotheses[0].token_ids == best.token_ids


async def test_beam_streams_the_best_hypothesis_and_matches_unary(client: AsyncTranslatorClient) -> None:
    tokens, final = await _collect(client, "12 March 2004", beam_size=4, n_best=2)
    best = final.hypotheses[0]
    assert [t.token_id for t in tokens] == best.token_ids
    assert [t.index for t in tokens] == list(range(len(best.token_ids)))
    assert len(final.hypotheses) == 2
    unary = await client.translate_one("12 March 2004", beam_size=4, n_best=2)
    assert [h.token_ids for h in unary.hypotheses] == [h.token_ids for h in final.hypotheses]


async def test_stream_attention_rows_sum_to_one(client: AsyncTranslatorClient) -> None:
    tokens, final = await _collect(client, "1 April 1990", attention=True)
    assert all(t.attention is not None and t.attention.shape == (len(final.source_tokens),) for t in tokens)
    np.testing.assert_allclose([t.attention.sum() for t in tokens], 1.0, atol=1e-4)  # type: ignore[union-attr]
    np.testing.assert_allclose(
        np.stack([t.attention for t in tokens]), final.hypotheses[0].attention, atol=1e-6
    )


async def _wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` (no timing assertions: the timeout only guards against hanging)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("beam", [1, 4])
async def test_a_client_cancelling_mid_stream_frees_its_rows(
    server: RunningServer, stub: pb_grpc.TranslatorStub, client: AsyncTranslatorClient, beam: int
) -> None:
    scheduler = server.registry.get(ENDLESS_MODEL).scheduler
    request = pb.TranslateStreamRequest(
        text="1 April 1990",
        options=pb.DecodeOptions(beam_size=beam, max_length=500),
        model=pb.ModelSpec(name=ENDLESS_MODEL),
    )
    call = stub.TranslateStream(request)
    first = await call.read()
    assert first.HasField("token")
    assert scheduler.running_requests == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    assert await call.code() == grpc.StatusCode.CANCELLED
    await _wait_until(lambda: scheduler.running_requests == 0)
    # Still serving.
    assert (await client.translate_one("1 April 1990")).hypotheses[0].token_ids
