"""BeamSearch rules, driven by a deterministic toy "model" whose next-token log-probs depend on the
prefix, so the search's choices matter."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from s2s.search import FINISH_EOS, FINISH_MAX_LENGTH, BeamSearch, best_candidates, length_penalty
from s2s.tokenizer import EOS_ID

VOCAB = 7


def toy_log_probs(prefix: tuple[int, ...]) -> np.ndarray:
    seed = int(hashlib.sha256(repr(prefix).encode()).hexdigest()[:8], 16)
    logits = np.random.default_rng(seed).normal(size=VOCAB).astype(np.float32) * 2
    logits[EOS_ID] += 0.6 * len(prefix)  # longer prefixes end more often
    logits -= logits.max()
    return (logits - np.log(np.exp(logits).sum())).astype(np.float32)


def run(search: BeamSearch, check_prefix=None):
    prefixes = [()]
    stable_seen = []
    while not search.done:
        lps = np.stack([toy_log_probs(p) for p in prefixes])
        ids = np.argsort(-lps, axis=1, kind="stable")[:, : search.k]
        top = np.take_along_axis(lps, ids, axis=1)
        attn = np.full((len(prefixes), 3), 1 / 3, dtype=np.float32)
        parents = search.advance(top, ids, attn)
        stable_seen.append(search.stable_prefix())
        if search.done:
            break
        prefixes = [prefixes[p] + (int(t),) for p, t in zip(parents, search.next_tokens, strict=True)]
    return search.results(), stable_seen


def exhaustive_best(max_len: int, alpha: float):
    best = None
    for n in range(0, max_len + 1):
        for body in itertools.product([t for t in range(VOCAB) if t != EOS_ID], repeat=n):
            score = 0.0
            for i, tok in enumerate(body):
                score += float(toy_log_probs(body[:i])[tok])
            ended = n < max_len
            if ended:
                score += float(toy_log_probs(body)[EOS_ID])
            norm = score / length_penalty(n + 1 if ended else n, alpha)
            if best is None or norm > best[0]:
                best = (norm, list(body))
    return best


def test_greedy_is_argmax_chain():
    search = BeamSearch(beam_size=1, max_len=12)
    (hyp,), _ = run(search)
    # Once done, no row continues: the candidate after <eos> must not leak out as a next token.
    assert search.num_live == 0 and search.next_tokens.size == 0
    prefix: tuple[int, ...] = ()
    while len(prefix) < 12:
        tok = int(np.argmax(toy_log_probs(prefix)))
        if tok == EOS_ID:
            break
        prefix += (tok,)
    assert hyp.tokens == list(prefix)
    assert hyp.finish_reason == (FINISH_EOS if len(prefix) < 12 else FINISH_MAX_LENGTH)


def test_wide_beam_finds_exhaustive_optimum():
    # A beam as wide as every prefix of length <= 3 is an exhaustive search.
    search = BeamSearch(beam_size=6**3, n_best=1, max_len=3)
    (hyp,), _ = run(search)
    best_score, best_tokens = exhaustive_best(3, 0.0)
    assert hyp.tokens == best_tokens
    assert hyp.score == pytest.approx(best_score, abs=1e-5)


def test_length_penalty_forms():
    assert length_penalty(7, 0.0) == length_penalty(7, 0.0, "avg") == 1.0  # raw log-probs
    assert length_penalty(7, 0.6) == pytest.approx(2.0**0.6)  # GNMT: ((5 + 7) / 6) ** 0.6
    assert length_penalty(7, 1.0, "avg") == 7.0  # the mean log-prob per token
    assert length_penalty(4, 0.5, "avg") == pytest.approx(2.0)


@pytest.mark.parametrize(
    "beam,alpha,norm",
    [(2, 0.0, "gnmt"), (4, 0.6, "gnmt"), (5, 1.0, "gnmt"), (4, 1.0, "avg"), (5, 0.5, "avg")],
)
def test_nbest_sorted_and_scores_consistent(beam, alpha, norm):
    hyps, stable_seen = run(
        BeamSearch(
            beam_size=beam,
            n_best=beam,
            max_len=10,
            length_penalty=alpha,
            keep_attention=True,
            length_norm=norm,
        )
    )
    assert 1 <= len(hyps) <= beam
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        assert len(h.token_log_probs) == len(h.tokens)
        assert h.attention.shape == (len(h.tokens), 3)
        extra = 0.0 if h.finish_reason == FINISH_MAX_LENGTH else float(toy_log_probs(tuple(h.tokens))[EOS_ID])
        assert h.raw_score == pytest.approx(sum(h.token_log_probs) + extra, abs=1e-4)
        n = len(h.tokens) + (h.finish_reason == FINISH_EOS)
        assert h.score == pytest.approx(h.raw_score / length_penalty(n, alpha, norm), rel=1e-6)
    # Every prefix streamed as stable is a prefix of what the search finally returns, and grows.
    best = hyps[0].tokens
    for earlier, later in zip(stable_seen, stable_seen[1:], strict=False):
        assert later[: len(earlier)] == earlier
    assert all(best[: len(p)] == p for p in stable_seen)


def test_rejects_bad_options():
    for kwargs in (
        {"beam_size": 0},
        {"beam_size": 2, "n_best": 3},
        {"max_len": 0},
        {"length_penalty": -1},
        {"length_norm": "wu"},
    ):
        with pytest.raises(ValueError):
            BeamSearch(**kwargs)


def test_shape_mismatch_is_an_error():
    search = BeamSearch(beam_size=2)
    with pytest.raises(ValueError, match="expected candidates for 1 rows"):
        search.advance(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.int64))


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_greedy_fast_path_equals_the_general_rule(alpha):
    # Ties included: quantised log-probs make equal candidates common.
    def quantised(prefix):
        return np.round(toy_log_probs(prefix) / 4) * 4

    for max_len in (1, 4, 12):
        outcomes = []
        for fast in (True, False):
            search = BeamSearch(beam_size=1, max_len=max_len, length_penalty=alpha, keep_attention=True)
            search.greedy_fast_path = fast
            prefix, stable = (), []
            while not search.done:
                lps = quantised(prefix).astype(np.float32)[None, :]
                ids = np.argsort(-lps, axis=1, kind="stable")[:, : search.k]
                search.advance(np.take_along_axis(lps, ids, axis=1), ids, np.ones((1, 2), np.float32) / 2)
                stable.append(search.stable_prefix())
                if not search.done:
                    prefix += (int(search.next_tokens[0]),)
            (hyp,) = search.results()
            outcomes.append((hyp.tokens, hyp.token_log_probs, hyp.score, hyp.finish_reason, stable))
        assert outcomes[0] == outcomes[1]


def test_an_eos_past_the_beam_is_skipped_and_the_walk_still_fills_the_beam():
    # Beam 2 after step 0 has two live rows. This step's order: eos (position 0 < beam: a finished
    # hypothesis), live, eos (position 2: skipped, neither finished nor live), live. The walk needs
    # all 2 x beam positions of the order to find its two live rows.
    search = BeamSearch(beam_size=2, n_best=2, max_len=10)
    search.advance(np.log(np.array([[0.6, 0.4]], dtype=np.float32)), np.array([[3, 4]]))
    top = np.log(np.array([[0.9, 0.05, 0.05, 1e-9], [0.5, 0.3, 0.2, 1e-9]], dtype=np.float32))
    ids = np.array([[EOS_ID, 5, 6, 1], [6, EOS_ID, 5, 1]])
    # Scores: row 0 (log 0.6) + log 0.9 = -0.62 (eos), row 1 (log 0.4) + log 0.5 / 0.3 / 0.2 =
    # -1.61 (6), -2.12 (eos), -2.53 (5); row 0's others -3.51.
    parents = search.advance(top, ids)
    assert parents.tolist() == [1, 1] and search.next_tokens.tolist() == [6, 5]
    assert not search.done and len(search._finished) == 1  # the skipped eos finished nothing


def test_ranking_requests_together_keeps_each_requests_own_order_and_ties():
    # Four requests of three live rows, six candidates a row, values quantised so that equal
    # totals are common: ties must go to the lower row, then the higher-ranked candidate, as a
    # request ranked alone (and the plain sort below) orders them.
    rng = np.random.default_rng(7)
    m, r, k, n = 4, 3, 6, 6
    scores = np.round(rng.normal(size=(m, r)) * 2).astype(np.float32) / 2
    top = -np.sort(np.round(rng.exponential(size=(m, r, k)) * 2), axis=2).astype(np.float32) / 2
    ids = rng.permuted(np.tile(np.arange(4, 4 + k), (m, r, 1)), axis=2)
    together = best_candidates(scores, top, ids, n)
    for i in range(m):
        [alone] = best_candidates(scores[i : i + 1], top[i : i + 1], ids[i : i + 1], n)
        assert together[i] == alone
        flat = [(float(scores[i, row] + top[i, row, rank]), row * k + rank)
                for row in range(r) for rank in range(k)]  # fmt: skip
        expected = [pos for _, pos in sorted(flat, key=lambda t: (-t[0], t[1]))][:n]
        assert [row * k + int(np.flatnonzero(ids[i, row] == tok)[0]) for row, tok in
                zip(alone.rows, alone.tokens, strict=True)] == expected  # fmt: skip
    assert len({c.scores[0] for c in together}) > 1  # the requests really differ
    assert any(len(set(c.scores)) < n for c in together)  # and ties really occur


def _search_with(beam: int, n_best: int, alpha: float, width, log_probs_of) -> tuple:
    """A whole search fed `width(search)` candidates a row; its results and every step's parents."""
    search = BeamSearch(beam_size=beam, n_best=n_best, max_len=9, length_penalty=alpha)
    search.greedy_fast_path = False  # the general walk, at beam 1 too
    prefixes, parents_seen = [()], []
    while not search.done:
        lps = np.stack([log_probs_of(p) for p in prefixes])
        ids = np.argsort(-lps, axis=1, kind="stable")[:, : width(search)]  # TopK's order and ties
        parents = search.advance(np.take_along_axis(lps, ids, axis=1), ids)
        parents_seen.append((parents.tolist(), search.next_tokens.tolist()))
        prefixes = [prefixes[p] + (int(t),) for p, t in zip(parents, search.next_tokens, strict=True)]
    return [(h.tokens, h.score, h.finish_reason) for h in search.results()], parents_seen


@pytest.mark.parametrize("beam", [1, 2, 3, 5])
def test_k_candidates_a_row_walk_as_the_whole_vocabulary_does(beam):
    # k = beam + 1 is what ONNX Runtime's TopK returns: the searches must not tell it from all
    # VOCAB candidates. Eos is made likely (it is the candidate a row can spend) and log-probs are
    # quantised, so that ties across rows and eos among the best are common.
    def eos_heavy(prefix):
        lps = toy_log_probs(prefix) / 2
        lps[EOS_ID] = max(lps) + 0.25 * (hash(prefix) % 3 - 1)
        return (np.round(lps * 2) / 2).astype(np.float32)

    seen_eos_in_top = False
    for n_best, alpha in [(1, 0.0), (beam, 0.6)]:
        full = _search_with(beam, n_best, alpha, lambda s: VOCAB, eos_heavy)
        assert _search_with(beam, n_best, alpha, lambda s: s.k, eos_heavy) == full
        seen_eos_in_top |= any(h[2] == FINISH_EOS for h in full[0])
        if beam > 1:  # one candidate fewer a row is not enough: the check can fail
            assert _search_with(beam, n_best, alpha, lambda s: s.k - 1, eos_heavy) != full
    assert seen_eos_in_top
