"""What one decoder step reports per request: tokens that became final, a finished search, or a
request that failed. Plain data (they cross the engine process's pipe pickled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2s.search import Hypothesis


@dataclass
class TokenEvent:
    """Tokens that became final: no later step can change them."""

    position: int  # index of tokens[0] in the output
    tokens: list[int]
    # Per-token log-probs. Greedy knows them at once; under beam search the shared prefix is
    # reported without them (None) and the best hypothesis' tail comes with them at the end.
    log_probs: list[float] | None
    attention: np.ndarray | None = None  # (len(tokens), src_len) when attention is kept and known


@dataclass
class Finished:
    """The search is done; its rows have left the batch."""

    hypotheses: list[Hypothesis]  # n_best, best first
    steps: int  # decoder steps the request took part in


@dataclass
class Failed:
    """Advancing this request raised; its rows have left the batch, the others go on."""

    error: Exception


Event = TokenEvent | Finished | Failed
