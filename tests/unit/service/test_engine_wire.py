"""What crosses the engine process's pipe: requests and deliveries as plain tuples, rebuilt equal."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from s2s.search import Hypothesis
from service.engine_process import ENGINE_ERRORS
from service.engine_worker import _wire, unwire
from service.errors import DeadlineExceeded, Draining, StepFailed
from service.handle import DecodeRequest, Result, TokenEvent


def _crossed(item):
    return unwire(pickle.loads(pickle.dumps(_wire(item))), ENGINE_ERRORS, StepFailed)


def test_a_request_crosses_as_its_field_values_in_order():
    request = DecodeRequest([5, 6, 7], beam_size=4, n_best=2, max_len=9, length_penalty=0.6,
                            want_attention=True, deadline=12.5, stream=True)  # fmt: skip
    fields = request.fields()
    assert fields == tuple(getattr(request, f.name) for f in dataclasses.fields(DecodeRequest))
    assert DecodeRequest(*pickle.loads(pickle.dumps(fields))) == request


def test_a_result_crosses_with_every_hypothesis_field_and_its_attention():
    attention = np.arange(6, dtype=np.float32).reshape(2, 3)
    hypotheses = [
        Hypothesis([4, 9], [-0.5, -0.25], -0.4, -0.75, "eos", attention),
        Hypothesis([4], [-0.5], -0.9, -0.5, "max_length"),
    ]
    back = _crossed(Result(hypotheses, 0.002, 0.03, 7))
    assert isinstance(back, Result) and (back.queue_wait_s, back.total_s, back.steps) == (0.002, 0.03, 7)
    for got, sent in zip(back.hypotheses, hypotheses, strict=True):
        assert (got.tokens, got.token_log_probs, got.score, got.raw_score, got.finish_reason) == (
            sent.tokens, sent.token_log_probs, sent.score, sent.raw_score, sent.finish_reason,
        )  # fmt: skip
    np.testing.assert_array_equal(back.hypotheses[0].attention, attention)
    assert back.hypotheses[1].attention is None


def test_a_token_event_crosses_whole():
    event = TokenEvent(3, [8, 2], [-0.1, -0.2], np.ones((2, 4), dtype=np.float32))
    back = _crossed(event)
    assert isinstance(back, TokenEvent) and (back.position, back.tokens, back.log_probs) == (
        3,
        [8, 2],
        [-0.1, -0.2],
    )
    np.testing.assert_array_equal(back.attention, event.attention)
    assert _crossed(TokenEvent(0, [1], None)).log_probs is None


@pytest.mark.parametrize("error", [Draining("shutting down"), DeadlineExceeded("late"), StepFailed("boom")])
def test_an_error_crosses_as_its_type_and_message(error):
    back = _crossed(error)
    assert type(back) is type(error) and str(back) == str(error)


def test_an_error_the_server_does_not_know_becomes_a_step_failure_that_tells_no_internals():
    back = _crossed(RuntimeError("the engine's own bug"))
    assert type(back) is StepFailed and "own bug" not in str(back)
