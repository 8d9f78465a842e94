"""Beam search bookkeeping for one request, shared by every decoder (numpy, torch-free).

The PyTorch reference decoder, the export's numpy + ONNX Runtime decoder and the server's
continuous-batching scheduler all run the model and hand each step's per-row top-k candidates to a
`BeamSearch`; it decides which hypotheses live, which finish, and which rows the next step reads.
With one implementation of the rules, the decoders can differ only in the numbers the model
computes. Greedy decoding is beam size 1. Rules: docs/design.md, "Search".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from s2s.tokenizer import EOS_ID

FINISH_EOS = "eos"
FINISH_MAX_LENGTH = "max_length"


LENGTH_NORMS = ("gnmt", "avg")
# Largest length-penalty alpha accepted. Used values are 0..2 (GNMT 0.6-1, OpenNMT-py avg 1);
# ((5 + 513) / 6) ** 10 is ~2e19, while alpha ~750 overflows a float for any length (a defect
# an outside test found), so every decoder and the server reject alpha above this.
MAX_LENGTH_PENALTY = 10.0


def length_penalty(length: int, alpha: float, norm: str = "gnmt") -> float:
    """What a finished hypothesis' summed log-prob is divided by; alpha 0 leaves raw log-probs,
    which favour short outputs. "gnmt": ((5 + len) / 6) ** alpha (Wu et al. 2016). "avg":
    len ** alpha; alpha 1 ranks by the mean log-prob per token, OpenNMT-py 3's default
    (`-length_penalty avg`), other alphas are fairseq's `--lenpen`."""
    if not alpha:
        return 1.0
    return float(length) ** alpha if norm == "avg" else ((5.0 + length) / 6.0) ** alpha


@dataclass
class Hypothesis:
    tokens: list[int]  # output ids, without eos
    token_log_probs: list[float]  # log-prob of each token in `tokens`
    score: float  # raw_score / length_penalty(len(tokens) + 1 if eos else len(tokens), alpha, norm)
    raw_score: float  # sum of log-probs, the eos included when it finished on eos
    finish_reason: str  # FINISH_EOS or FINISH_MAX_LENGTH
    attention: np.ndarray | None = None  # (len(tokens), src_len) when attention was kept


@dataclass
class Candidates:
    """One request's best candidates of a step, best first: ties go to the lower live row, then to
    the higher-ranked candidate of that row (the flat (row, rank) order). Python lists."""

    rows: list[int]  # the live row each candidate extends
    tokens: list[int]
    scores: list[float]  # the row's cumulative log-prob plus the candidate's, in float32
    log_probs: list[float]  # the candidate's own log-prob


def best_candidates(
    scores: np.ndarray, top_log_probs: np.ndarray, top_ids: np.ndarray, n: int
) -> list[Candidates]:
    """The n best candidates of each of m requests with r live rows and k candidates a row, in
    one set of numpy calls: scores (m, r) float32, top_log_probs and top_ids (m, r, k). A row's
    ids are distinct, so at most r <= beam eos candidates are skipped and n = 2 * beam suffices."""
    m, r, k = top_log_probs.shape
    log_probs = top_log_probs.astype(np.float32, copy=False)
    if m == 1:  # one request (the per-request decoders): 1-D calls, ~half the cost of the 2-D ones
        cand = (scores[0].astype(np.float32, copy=False)[:, None] + log_probs[0]).ravel()
        order = np.argsort(-cand, kind="stable")[:n]
        rows = [position // k for position in order.tolist()]
        tokens = top_ids[0].ravel()[order].tolist()
        return [Candidates(rows, tokens, cand[order].tolist(), log_probs[0].ravel()[order].tolist())]
    cand = (scores.astype(np.float32, copy=False)[:, :, None] + log_probs).reshape(m, r * k)
    order = np.argsort(-cand, axis=1, kind="stable")[:, :n]  # (m, n) flat (row, rank) positions
    flat = order + (np.arange(m) * (r * k))[:, None]  # into the (m * r * k) raveled arrays
    rows = (order // k).tolist()
    tokens = top_ids.reshape(-1)[flat].tolist()  # take_along_axis's own Python costs ~4x this
    totals = cand.reshape(-1)[flat].tolist()
    own = log_probs.reshape(-1)[flat].tolist()
    return [Candidates(*fields) for fields in zip(rows, tokens, totals, own, strict=True)]


@dataclass
class _Finished:
    step: int  # step that produced eos (or the last step for max_length)
    row: int  # live row at `step` - 1 (eos) or at `step` (max_length) it descends from
    raw_score: float
    score: float
    eos_log_prob: float | None  # None for max_length
    eos_attention: np.ndarray | None


class BeamSearch:
    """Search state of one request. Feed `advance` the top-k candidates of each live row."""

    greedy_fast_path = True  # beam size 1 skips the general walk (tests turn it off to compare)

    def __init__(
        self,
        beam_size: int = 1,
        n_best: int = 1,
        max_len: int = 100,
        length_penalty: float = 0.0,
        keep_attention: bool = False,
        eos_id: int = EOS_ID,
        length_norm: str = "gnmt",  # how length_penalty (alpha) applies: see length_penalty()
    ):
        if (
            beam_size < 1
            or not 1 <= n_best <= beam_size
            or max_len < 1
            or not 0 <= length_penalty <= MAX_LENGTH_PENALTY
        ):
            raise ValueError(
                f"need beam_size >= 1, 1 <= n_best <= beam_size, max_len >= 1, "
                f"0 <= length_penalty <= {MAX_LENGTH_PENALTY:g}; "
                f"got beam_size={beam_size}, n_best={n_best}, max_len={max_len}, "
                f"length_penalty={length_penalty}"
            )
        if length_norm not in LENGTH_NORMS:
            raise ValueError(f"length_norm must be one of {LENGTH_NORMS}, got {length_norm!r}")
        self.beam_size = beam_size
        self.n_best = n_best
        self.max_len = max_len
        self.alpha = length_penalty
        self.length_norm = length_norm
        self.keep_attention = keep_attention
        self.eos_id = eos_id
        self.done = False
        self.length = 0  # tokens produced by the live hypotheses
        # Cumulative log-prob per live row: float32 values (sums are taken in float32, as the
        # batch's numpy does) kept as Python floats, which the walk reads ~10x faster.
        self._scores: list[float] = [0.0]
        # History, one entry per step s, over the live rows after step s (Python lists: each
        # step appends one, and reading them back is per element).
        self._tokens: list[list[int]] = []
        self._parents: list[list[int]] = []  # index into the live rows after step s - 1
        self._log_probs: list[list[float]] = []
        self._attention: list[np.ndarray] = []
        self._finished: list[_Finished] = []
        self._stable: list[int] = []  # cached stable prefix; it only ever grows
        self._src_len = 0

    # -- what the decoder reads ------------------------------------------------------------------
    @property
    def num_live(self) -> int:
        return 0 if self.done else len(self._scores)

    @property
    def next_tokens(self) -> np.ndarray:
        """(num_live,) tokens the live rows feed to the next step; empty before the first."""
        return np.asarray(self.next_token_ids, dtype=np.int64)

    @property
    def next_token_ids(self) -> list[int]:
        """`next_tokens` as a list (what a batched caller concatenates)."""
        if self.done or not self._tokens:
            return []
        return self._tokens[-1]

    @property
    def live_scores(self) -> list[float]:
        """Cumulative log-prob of each live row (float32 values): what `best_candidates` adds to."""
        return self._scores

    @property
    def k(self) -> int:
        """Candidates each row must supply: enough that beam_size survive any eos among them.
        A row's ids are distinct, so at most one of its candidates is eos, and the walk stops at
        beam_size survivors: it never reads more than beam_size + 1 of one row's candidates.
        The walk over these equals the walk over any longer lists (ONNX Runtime's TopK over
        4,000 ids, 500 rows, one thread: ~5.0 us a row at k = 6, ~6.4 us at k = 10)."""
        return self.beam_size + 1

    @property
    def walk_length(self) -> int:
        """Positions of a step's ranked candidates (all live rows' together) the walk may read:
        each row has at most one eos among them, and rows <= beam_size, so 2 x beam_size always
        hold beam_size survivors. What `best_candidates` must return (its n)."""
        return 2 * self.beam_size

    # -- one step --------------------------------------------------------------------------------
    def advance(
        self, top_log_probs: np.ndarray, top_ids: np.ndarray, attention: np.ndarray | None = None
    ) -> np.ndarray:
        """`advance_list`, with the parents as an int64 array."""
        return np.asarray(self.advance_list(top_log_probs, top_ids, attention), dtype=np.int64)

    def advance_list(
        self, top_log_probs: np.ndarray, top_ids: np.ndarray, attention: np.ndarray | None = None
    ) -> list[int]:
        """Take the step's candidates, (R, k') log-probs and ids, R = num_live, k' <= k, sorted or
        not. Returns `parents` (R',): next step's row i continues this step's row parents[i]
        (reorder decoder state with it) and feeds token `next_tokens[i]`. Once `done`, the
        request's rows leave the batch, `parents` is empty and `results()` holds the answer."""
        if self.done:
            raise RuntimeError("advance() called on a finished search")
        rows, k = top_log_probs.shape
        if rows != self.num_live or top_ids.shape != (rows, k):
            raise ValueError(
                f"expected candidates for {self.num_live} rows, got log-probs {top_log_probs.shape} "
                f"and ids {top_ids.shape}"
            )
        if self.keep_attention and (attention is None or attention.shape[0] != rows):
            raise ValueError(f"keep_attention needs an attention row per live row ({rows})")
        if self.beam_size == 1 and self.greedy_fast_path:
            if attention is not None:
                self._src_len = attention.shape[1]
            return self._advance_greedy(top_log_probs[0], top_ids[0], attention)
        scores = np.asarray(self._scores, dtype=np.float32)[None]  # (1, R)
        [candidates] = best_candidates(scores, top_log_probs[None], top_ids[None], self.walk_length)
        return self.advance_ranked(candidates, attention)

    def advance_ranked(self, candidates: Candidates, attention: np.ndarray | None = None) -> list[int]:
        """`advance` with the step's candidates already ranked by `best_candidates` (a batched
        caller ranks every request of a step in one numpy call); the parents, as a list."""
        if self.done:
            raise RuntimeError("advance() called on a finished search")
        if attention is not None:
            self._src_len = attention.shape[1]
        elif self.keep_attention:
            raise ValueError("keep_attention needs an attention row per live row")
        step = self.length
        best_was_eos = candidates.tokens[0] == self.eos_id if candidates.tokens else False
        live_rows, live_tokens, live_lps, live_scores = [], [], [], []
        for position, token in enumerate(candidates.tokens):
            score = candidates.scores[position]
            if not math.isfinite(score):
                break  # the rest are -inf too
            if token == self.eos_id:
                if position < self.beam_size:
                    row, log_prob = candidates.rows[position], candidates.log_probs[position]
                    self._finish_eos(step, row, score, log_prob, attention)
                continue
            live_rows.append(candidates.rows[position])
            live_tokens.append(token)
            live_lps.append(candidates.log_probs[position])
            live_scores.append(score)
            if len(live_rows) == self.beam_size:
                break
        self._tokens.append(live_tokens)
        self._parents.append(live_rows)
        self._log_probs.append(live_lps)
        if self.keep_attention:
            self._attention.append(attention[live_rows] if live_rows else attention[:0])
        self._scores = live_scores
        self.length = step + 1
        finished = len(self._finished)
        if finished >= self.beam_size or (best_was_eos and finished >= self.n_best) or not live_rows:
            self.done = True
        elif self.length >= self.max_len:
            for row, score in enumerate(self._scores):
                self._finished.append(
                    _Finished(self.length, row, score, score / self._penalty(self.length), None, None)
                )
            self.done = True
        if self.done:  # the rows leave the batch; nothing continues
            self._scores = []
            return []
        return live_rows

    def _advance_greedy(self, log_probs: np.ndarray, ids: np.ndarray, attention) -> list[int]:
        """Beam size 1, the common case, without the general walk: the same rule (first best
        candidate, ties by rank) at a third of the cost per step."""
        step = self.length
        cand = self._scores[0] + log_probs.astype(np.float32, copy=False)  # (k,) float32
        best = int(cand.argmax())  # first maximum: the general rule's tie order
        score, token = cand[best], int(ids[best])
        if not math.isfinite(score):
            self.done = True
        elif token == self.eos_id:
            self._finish_eos(step, 0, score, log_probs[best], attention)
            self.length = step + 1
            self.done = True
        else:
            self._tokens.append([token])
            self._parents.append([0])
            self._log_probs.append([float(log_probs[best])])
            if self.keep_attention:
                self._attention.append(attention[:1])
            self._scores = [float(score)]
            self.length = step + 1
            if self.length >= self.max_len:
                lp = self._penalty(self.length)
                self._finished.append(_Finished(self.length, 0, float(score), float(score) / lp, None, None))
                self.done = True
        if self.done:
            self._scores = []
            return []
        return [0]

    def _penalty(self, length: int) -> float:
        return length_penalty(length, self.alpha, self.length_norm)

    def _finish_eos(self, step, row, score, log_prob, attention) -> None:
        # The hypothesis is the live row `row` after step - 1 (step tokens) plus eos.
        self._finished.append(
            _Finished(
                step,
                row,
                float(score),
                float(score) / self._penalty(step + 1),
                float(log_prob),
                attention[row].copy() if self.keep_attention else None,
            )
        )

    # -- reading hypotheses ----------------------------------------------------------------------
    def _trace(self, row: int, last_step: int, first_step: int = 0):
        """Tokens, log-probs and attention rows of live row `row` after `last_step`, from
        `first_step` on."""
        tokens, lps, attn = [], [], []
        for s in range(last_step, first_step - 1, -1):
            tokens.append(int(self._tokens[s][row]))
            lps.append(float(self._log_probs[s][row]))
            if self.keep_attention:
                attn.append(self._attention[s][row])
            row = int(self._parents[s][row])
        return tokens[::-1], lps[::-1], attn[::-1]

    def results(self) -> list[Hypothesis]:
        """The n_best finished hypotheses, best first (only once done)."""
        if not self.done:
            raise RuntimeError("results() called before the search finished")
        ranked = sorted(self._finished, key=lambda f: -f.score)  # stable: earlier finish first
        out = []
        for f in ranked[: self.n_best]:
            if f.eos_log_prob is None:  # max_length: row is live after step - 1
                tokens, lps, attn = self._trace(f.row, f.step - 1)
                reason = FINISH_MAX_LENGTH
            else:
                tokens, lps, attn = self._trace(f.row, f.step - 1) if f.step else ([], [], [])
                reason = FINISH_EOS
            attention = None
            if self.keep_attention:
                attention = np.stack(attn) if attn else np.zeros((0, self._src_len), np.float32)
            out.append(Hypothesis(tokens, lps, f.score, f.raw_score, reason, attention))
        return out

    def stable_prefix(self) -> list[int]:
        """Tokens every live and finished hypothesis shares: final, whatever the search does next."""
        if self.length == 0:
            return []
        # Longest possible prefix: no finished hypothesis is longer than its own tokens.
        limit = min([self.length] + [f.step for f in self._finished])
        known = len(self._stable)
        if limit <= known:
            return list(self._stable)
        # Walk ancestors down from the last step; finished hypotheses join at their last token.
        joins: dict[int, set[int]] = {}
        for f in self._finished:
            if f.step > 0:  # eos at step s descends from row f.row after step s - 1
                joins.setdefault(f.step - 1, set()).add(f.row)
        rows = set(range(len(self._scores)))  # empty once done: only finished ones count
        for s in range(self.length - 1, known - 1, -1):
            rows |= joins.get(s, set())
            if len(rows) == 1 and s < limit:
                (row,) = rows
                tokens, _, _ = self._trace(row, s, known)
                self._stable.extend(tokens)
                break
            rows = {int(self._parents[s][r]) for r in rows}
        return list(self._stable)
