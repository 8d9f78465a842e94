"""engine/step.py on the shipped bundle in real ONNX Runtime sessions: one step over a batch of
greedy and beam requests advances each exactly as the per-request loop does; finished, cancelled
and failing requests leave the batch; streamed tokens are the best hypothesis."""

from __future__ import annotations

import numpy as np
import pytest

from engine.decode import Decoder
from engine.decoding import Decoding
from engine.events import Failed, Finished, TokenEvent
from engine.sessions import StepOutput
from engine.step import RANK_TOGETHER_ROWS, _rank_together, encode, step
from s2s.search import BeamSearch

TOLERANCE = 1e-5  # alone vs batched: float32 sums over a padded source, taken in another order
BEAMS = (1, 4, 1, 3, 2, 1)  # greedy and beam requests side by side, each ranked alone
# Enough requests of one beam (and greedy ones) that steps rank them together (RANK_TOGETHER_ROWS)
TOGETHER = (3,) * 6 + (1,) * 14


def _sources(bundle, count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    vocab = bundle.model.src_vocab_size
    return [rng.integers(4, vocab, int(rng.integers(1, 20))).tolist() for _ in range(count)]


def _search(beam: int, eos_id: int) -> BeamSearch:
    return BeamSearch(beam, min(beam, 2), 15, 0.6 if beam > 1 else 0.0, keep_attention=True, eos_id=eos_id)


def _run(runner, batch, decodings):
    """Step until every request ended: (events in order, batch sizes of each step)."""
    events, rows = [], []
    while batch is not None:
        outcome = step(runner, batch, decodings)
        assert outcome.timings.rows == len(batch) and outcome.timings.decoder_s > 0
        rows.append(len(batch))
        events.extend(outcome.events)
        ended = {key for key, event in outcome.events if isinstance(event, Finished | Failed)}
        batch = outcome.batch
        if batch is not None:
            assert ended.isdisjoint(batch.row_owner.tolist()), "an ended request kept rows"
    return events, rows


def test_encode_pads_to_the_longest_source_with_one_bos_row_each(runner):
    batch, seconds = encode(runner, [7, 3], [[5, 6, 7], [5]])
    assert seconds > 0 and batch.row_owner.tolist() == [7, 3]
    assert batch.src_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.prev_tokens.tolist() == [runner.graphs.bos_id] * 2


@pytest.mark.parametrize("beams", [BEAMS, TOGETHER], ids=["ranked-alone", "ranked-together"])
def test_a_shared_step_advances_greedy_and_beam_rows_as_the_per_request_loop_does(bundle, runner, beams):
    eos = runner.graphs.eos_id
    sources = _sources(bundle, len(beams), seed=1)
    decodings = {key: Decoding(search=_search(beam, eos), src_len=len(src))
                 for key, (beam, src) in enumerate(zip(beams, sources, strict=True))}  # fmt: skip
    batch, _ = encode(runner, list(decodings), sources)
    events, rows = _run(runner, batch, decodings)
    assert max(rows) > len(beams), "beam requests should have grown past their <bos> row"
    finished = {key: event for key, event in events if isinstance(event, Finished)}
    assert sorted(finished) == list(decodings) and len(events) == len(decodings)
    alone = Decoder(runner, bundle)
    for key, (beam, src) in enumerate(zip(beams, sources, strict=True)):
        expected = alone.run_search(np.asarray([src], dtype=np.int64), _search(beam, eos))
        got = finished[key].hypotheses
        assert finished[key].steps == decodings[key].steps
        assert [h.tokens for h in got] == [h.tokens for h in expected], f"request {key}"
        assert [h.finish_reason for h in got] == [h.finish_reason for h in expected], f"request {key}"
        for a, b in zip(got, expected, strict=True):
            assert a.score == pytest.approx(b.score, rel=TOLERANCE), f"request {key}"
            np.testing.assert_allclose(a.attention, b.attention, atol=TOLERANCE)


@pytest.mark.parametrize("beam", [1, 4])
def test_streamed_tokens_are_the_best_hypothesis(bundle, runner, beam):
    eos = runner.graphs.eos_id
    sources = _sources(bundle, 3, seed=2)
    decodings = {
        k: Decoding(search=_search(beam, eos), src_len=len(s), stream=True) for k, s in enumerate(sources)
    }
    events, _ = _run(runner, encode(runner, list(decodings), sources)[0], decodings)
    for key in decodings:
        mine = [event for k, event in events if k == key]
        *tokens, end = mine
        assert isinstance(end, Finished) and all(isinstance(t, TokenEvent) for t in tokens)
        assert [t.position for t in tokens] == np.cumsum([0] + [len(t.tokens) for t in tokens[:-1]]).tolist()
        assert [tok for t in tokens for tok in t.tokens] == end.hypotheses[0].tokens


class _Cancelled(Decoding):
    @property
    def cancelled(self) -> bool:
        return True


class _Broken(BeamSearch):
    def advance(self, *args, **kwargs):
        raise RuntimeError("a search that fails")

    advance_ranked = advance  # what a step calls once it has ranked the beams together


def test_cancelled_and_failing_requests_leave_and_the_others_go_on(bundle, runner, caplog):
    eos = runner.graphs.eos_id
    sources = _sources(bundle, 3, seed=3)
    decodings = {
        0: Decoding(search=_search(2, eos), src_len=len(sources[0])),
        1: _Cancelled(search=_search(2, eos), src_len=len(sources[1])),
        2: Decoding(search=_Broken(2, 1, 15, eos_id=eos), src_len=len(sources[2])),
    }
    batch, _ = encode(runner, [0, 1, 2], sources)
    outcome = step(runner, batch, decodings)
    assert outcome.gone == [1] and decodings[1].steps == 0
    [(key, failed)] = [(k, e) for k, e in outcome.events if isinstance(e, Failed)]
    assert key == 2 and "a search that fails" in str(failed.error)
    assert "request 2 failed" in caplog.text
    assert set(outcome.batch.row_owner.tolist()) == {0}, "only the healthy request goes on"


def _output(rows_per_request: list[int], k: int) -> tuple[StepOutput, dict[int, tuple[int, int]]]:
    rows = sum(rows_per_request)
    log_probs = -np.sort(np.random.default_rng(3).exponential(size=(rows, k)), axis=1).astype(np.float32)
    ids = np.tile(np.arange(4, 4 + k), (rows, 1))
    out = StepOutput({}, np.zeros((rows, 2), np.float32), np.zeros((rows, 3), np.float32), log_probs, ids)
    starts = np.cumsum([0, *rows_per_request])
    return out, {key: (int(starts[key]), int(starts[key + 1])) for key in range(len(rows_per_request))}


def test_only_groups_of_enough_rows_are_ranked_together():
    # A lone request (the per-request decoders, the benchmarks' baselines) ranks its own, as it
    # did before requests were ranked together; so do small groups, where that costs less.
    assert RANK_TOGETHER_ROWS == 12, "the cases below are written for 12 rows"

    def decodings(beams):
        found = {}
        for key, beam in enumerate(beams):
            search = BeamSearch(beam, 1, 15, eos_id=2)
            search._scores = [0.0] * beam  # past step 0: `beam` live rows
            found[key] = Decoding(search=search, src_len=3)
        return found

    for beams, together in [((5,), set()), ((1,) * 11, set()), ((1,) * 12, set(range(12))),
                            ((5, 5), set()), ((5, 5, 5), {0, 1, 2}), ((5, 5, 1), set())]:  # fmt: skip
        out, ranges = _output(list(beams), 10)
        ranked = _rank_together(out, ranges, decodings(beams))
        assert set(ranked) == together, beams


def test_requests_ranked_together_walk_as_each_alone_does_with_eos_in_many_rows():
    # Eos ranks high in most rows, so the walk skips several of them and must read past the
    # first k positions of the merged order: ranked together it must be handed as many as alone.
    beam, requests = 4, 5  # 20 live rows: one group, ranked together
    rng = np.random.default_rng(11)
    eos = 2

    def past_step_0():
        search = BeamSearch(beam, beam, 15, eos_id=eos)
        search._scores = np.round(rng.normal(size=beam), 1).astype(np.float32).tolist()
        search._tokens, search._parents, search._log_probs = [[5] * beam], [[0] * beam], [[0.0] * beam]
        search.length = 1
        return search

    searches = {key: past_step_0() for key in range(requests)}
    twins = {key: past_step_0() for key in range(requests)}
    for key in searches:
        twins[key]._scores = list(searches[key]._scores)
    k = searches[0].k
    rows = beam * requests
    log_probs = -np.sort(np.round(rng.exponential(size=(rows, k)), 1), axis=1).astype(np.float32)
    ids = np.array([rng.permutation([eos, *range(4, 4 + 3 * k)])[:k] for _ in range(rows)])
    ids[rng.random(rows) < 0.7, 0] = eos  # eos first in most rows (the ids stay distinct per row)
    ids[:, 1:][ids[:, 1:] == eos] = 3 + 3 * k + 1  # ... and nowhere else in those rows
    out = StepOutput({}, np.zeros((rows, 2), np.float32), np.zeros((rows, 3), np.float32), log_probs, ids)
    ranges = {key: (key * beam, (key + 1) * beam) for key in range(requests)}
    ranked = _rank_together(out, ranges, {key: Decoding(search=s, src_len=3) for key, s in searches.items()})
    assert set(ranked) == set(searches)
    for key, (start, stop) in ranges.items():
        together = searches[key].advance_ranked(ranked[key])
        alone = twins[key].advance_list(log_probs[start:stop], ids[start:stop])
        assert (together, searches[key].next_token_ids) == (alone, twins[key].next_token_ids), key
        assert len(searches[key]._finished) == len(twins[key]._finished)
    assert sum(len(s._finished) for s in searches.values()) >= requests  # eos really finished some
