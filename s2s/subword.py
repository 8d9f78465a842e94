"""Byte-pair encoding (Sennrich et al. 2016) over word pieces, torch-free: learned by
`s2s subword train`, stored in the tokeniser dict (so in checkpoints and bundle manifests), and
applied by `s2s.tokenizer.Tokenizer` in training, evaluation and the server alike.

BPE cuts each word piece of the word tokeniser ("▁Va", "▁!", "'") into subword pieces whose
concatenation is the word piece, so detokenisation is the word tokeniser's and stays exact. A word
starts as its characters; merges, learned from the training split's most frequent adjacent pairs,
are applied lowest rank first. BPE-dropout (Provilkov et al. 2020) skips each candidate merge with
probability p while segmenting training text, so the model sees many cuts of a word: a regulariser
for small corpora; evaluation and serving never drop.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

Merge = tuple[str, str]
MIN_PAIR_COUNT = 2  # a pair seen once teaches nothing: merging it only adds a rare token


def learn_merges(word_counts: dict[str, int], num_symbols: int) -> list[Merge]:
    """BPE's merges on these word counts until they make `num_symbols` distinct symbols (two
    merges can make one: "a"+"bc" and "ab"+"c"), or fewer if pairs run out below MIN_PAIR_COUNT.
    Ties go to the lexicographically smallest pair, so the result is a function of the counts."""
    words = sorted(word_counts)  # a fixed order: sets of word indices iterate the same every run
    seqs = [list(w) for w in words]
    freqs = [word_counts[w] for w in words]
    counts: Counter[Merge] = Counter()
    where: defaultdict[Merge, set[int]] = defaultdict(set)  # pair -> words that may hold it
    for i, seq in enumerate(seqs):
        for pair in zip(seq, seq[1:], strict=False):
            counts[pair] += freqs[i]
            where[pair].add(i)
    heap = [(-n, pair) for pair, n in counts.items()]
    heapq.heapify(heap)
    merges: list[Merge] = []
    made: set[str] = set()
    while heap and len(made) < num_symbols:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg:
            continue  # stale: the count changed since this entry was pushed
        if -neg < MIN_PAIR_COUNT:
            break
        merges.append(pair)
        made.add(pair[0] + pair[1])
        changed: set[Merge] = set()
        for i in sorted(where.pop(pair)):
            old = seqs[i]
            new = _merge_all(old, pair)
            if len(new) == len(old):
                continue
            for p in zip(old, old[1:], strict=False):
                counts[p] -= freqs[i]
                changed.add(p)
            for p in zip(new, new[1:], strict=False):
                counts[p] += freqs[i]
                where[p].add(i)
                changed.add(p)
            seqs[i] = new
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]
    return merges


def _merge_all(seq: list[str], pair: Merge) -> list[str]:
    """Every non-overlapping occurrence of `pair`, left to right, joined into one symbol."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(seq[i] + seq[i + 1])
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


class BPE:
    """Applies learned merges to words. Segmentation without dropout is cached per word."""

    def __init__(self, merges: Iterable[Sequence[str]]):
        self.merges: list[Merge] = [(a, b) for a, b in merges]
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        if len(self.ranks) != len(self.merges):
            raise ValueError("BPE merges repeat a pair")
        self._cache: dict[str, list[str]] = {}

    def symbols(self) -> list[str]:
        """Every symbol a merge produces, in merge order."""
        return [a + b for a, b in self.merges]

    def segment(self, word: str, dropout: float = 0.0, rng: random.Random | None = None) -> list[str]:
        """`word` cut into subword pieces that concatenate back to it."""
        if not dropout:
            cached = self._cache.get(word)
            if cached is None:
                cached = self._cache[word] = self._segment(word, 0.0, None)
            return list(cached)
        return self._segment(word, dropout, rng or random.Random())

    def _segment(self, word: str, dropout: float, rng: random.Random | None) -> list[str]:
        symbols = list(word)
        ranks = self.ranks
        while len(symbols) > 1:
            best, best_rank = -1, len(ranks)
            for i in range(len(symbols) - 1):
                rank = ranks.get((symbols[i], symbols[i + 1]))
                # BPE-dropout: each applicable merge is skipped with probability `dropout`.
                if rank is not None and rank < best_rank and not (dropout and rng.random() < dropout):
                    best, best_rank = i, rank
            if best < 0:
                break
            symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]
        return symbols


def learn_vocabulary(
    word_counts: dict[str, int], vocab_size: int, reserved: int
) -> tuple[list[str], list[Merge]]:
    """(pieces, merges) for a vocabulary of `vocab_size` entries of which `reserved` are special
    tokens: every character of the words (most frequent first, ties by text), then as many merge
    results as fit, in merge order. Raises ValueError when the characters alone do not fit."""
    chars: Counter[str] = Counter()
    for word, n in word_counts.items():
        for ch in word:
            chars[ch] += n
    alphabet = sorted(chars, key=lambda c: (-chars[c], c))
    room = vocab_size - reserved - len(alphabet)
    if room < 0:
        raise ValueError(
            f"vocabulary size {vocab_size} is below the {len(alphabet)} characters of the text "
            f"plus {reserved} special tokens"
        )
    merges = learn_merges(word_counts, room)
    return alphabet + list(dict.fromkeys(a + b for a, b in merges)), merges
