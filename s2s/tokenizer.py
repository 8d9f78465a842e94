"""Character-, word- and subword-level (BPE) tokenisers, torch-free, saved with the model and
the bundle.

The server runs exactly this code on the vocabulary (and BPE merges) stored in the bundle manifest,
so training and serving cut text the same way. Word pieces carry a leading "▁" when whitespace
preceded them, which makes detokenisation exact (French "Va !" keeps its space, "l'aide" keeps
none); BPE pieces cut word pieces further (s2s.subword) and join back the same way.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from s2s.subword import BPE, learn_vocabulary

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPACE_MARK = "▁"  # U+2581, as in SentencePiece
KINDS = ("char", "word", "bpe")
NORMALIZATIONS = ("NFC", "NFKC", "none")

# A word is a run of letters/digits/underscore; every other non-space character stands alone.
_WORD_RE = re.compile(r"(\s*)(\w+|[^\w\s])")


class TokenizerError(ValueError):
    """A tokeniser could not be built or loaded; the message says why."""


@dataclass
class Tokenizer:
    kind: str  # "char", "word" or "bpe" (word pieces cut by `merges`)
    tokens: list[str]  # id -> token; the first four are SPECIAL_TOKENS
    normalization: str = "NFC"  # Unicode normal form applied before cutting ("none" to skip)
    lowercase: bool = False
    merges: list[tuple[str, str]] = field(default_factory=list)  # bpe only: in the order learned
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _bpe: BPE | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TokenizerError(f"tokeniser kind must be one of {KINDS}, got {self.kind!r}")
        if self.normalization not in NORMALIZATIONS:
            raise TokenizerError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if tuple(self.tokens[:4]) != SPECIAL_TOKENS:
            raise TokenizerError(f"vocabulary must start with {SPECIAL_TOKENS}, got {self.tokens[:4]}")
        if len(self.tokens) <= len(SPECIAL_TOKENS):
            raise TokenizerError("vocabulary is empty: no token besides the special ones")
        self._index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            raise TokenizerError("vocabulary has duplicate tokens")
        if self.kind != "bpe" and self.merges:
            raise TokenizerError(f"a {self.kind} tokeniser has no BPE merges")
        if self.kind == "bpe":
            self.merges = [tuple(m) for m in self.merges]
            if any(len(m) != 2 for m in self.merges):
                raise TokenizerError("each BPE merge must be a pair of pieces")
            try:
                self._bpe = BPE(self.merges)
            except ValueError as exc:
                raise TokenizerError(str(exc)) from None
            missing = [s for s in self._bpe.symbols() if s not in self._index]
            if missing:  # a segmentation could produce a piece with no id
                raise TokenizerError(f"BPE merges make pieces outside the vocabulary: {missing[:5]}")

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        kind: str = "word",
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        normalization: str = "NFC",
        lowercase: bool = False,
    ) -> Tokenizer:
        """Vocabulary of pieces seen at least `min_freq` times, most frequent first (ties by text),
        at most `max_size` entries including the four specials. BPE vocabularies are learned
        (`learn_bpe`), not counted."""
        if kind == "bpe":
            raise TokenizerError("a bpe vocabulary is learned with Tokenizer.learn_bpe (s2s subword train)")
        probe = cls(kind, list(SPECIAL_TOKENS) + ["?"], normalization, lowercase)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(probe.split(text))
        ranked = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        ranked = [t for t in ranked if t not in SPECIAL_TOKENS]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIAL_TOKENS))]
        if not ranked:
            raise TokenizerError(
                f"vocabulary is empty after min_freq={min_freq}, max_size={max_size} "
                f"({len(counts)} distinct {kind} pieces seen)"
            )
        return cls(kind, list(SPECIAL_TOKENS) + ranked, normalization, lowercase)

    @classmethod
    def learn_bpe(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        normalization: str = "NFC",
        lowercase: bool = False,
    ) -> Tokenizer:
        """A BPE tokeniser of `vocab_size` entries (specials included) learned on `texts`: every
        character seen, then merges of the most frequent adjacent pieces within word pieces."""
        probe = cls("word", list(SPECIAL_TOKENS) + ["?"], normalization, lowercase)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(probe.split(text))
        if not counts:
            raise TokenizerError("no text to learn BPE from")
        try:
            pieces, merges = learn_vocabulary(dict(counts), vocab_size, len(SPECIAL_TOKENS))
        except ValueError as exc:
            raise TokenizerError(str(exc)) from None
        pieces = [p for p in pieces if p not in SPECIAL_TOKENS]
        return cls("bpe", list(SPECIAL_TOKENS) + pieces, normalization, lowercase, merges)

    # -- text <-> pieces ------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        if self.normalization != "none":
            text = unicodedata.normalize(self.normalization, text)
        return text.lower() if self.lowercase else text

    def split(self, text: str, dropout: float = 0.0, rng: random.Random | None = None) -> list[str]:
        """Text -> pieces (strings), before vocabulary lookup. `dropout` (bpe only, training
        only): BPE-dropout's probability of skipping each merge, drawn from `rng`."""
        text = self.normalize(text).strip()
        if self.kind == "char":
            # Runs of whitespace become one space piece, so "a  b" and "a b" cut alike.
            return list(re.sub(r"\s+", " ", text))
        pieces = []
        for space, word in _WORD_RE.findall(text):
            pieces.append((SPACE_MARK + word) if (space or not pieces) else word)
        if self._bpe is not None:
            return [sub for word in pieces for sub in self._bpe.segment(word, dropout, rng)]
        return pieces

    def join(self, pieces: Sequence[str]) -> str:
        """Pieces -> text: the inverse of split (up to normalisation and whitespace runs)."""
        if self.kind == "char":
            return "".join(pieces)
        return "".join(p.replace(SPACE_MARK, " ") for p in pieces).strip()

    # -- ids ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, dropout: float = 0.0, rng: random.Random | None = None) -> list[int]:
        """Text -> ids, no special tokens; unknown pieces map to UNK_ID. `dropout`: see split."""
        return self.ids(self.split(text, dropout, rng))

    def ids(self, pieces: Sequence[str]) -> list[int]:
        """Pieces (from `split`) -> ids; unknown pieces map to UNK_ID."""
        return [self._index.get(p, UNK_ID) for p in pieces]

    def count_unknown(self, ids: Sequence[int]) -> int:
        return sum(1 for i in ids if i == UNK_ID)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Ids -> token strings (specials included), for attention axes and debugging."""
        return [self.tokens[i] if 0 <= i < len(self.tokens) else UNK for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text: stops at EOS, drops PAD/BOS, shows UNK as <unk>."""
        return self.join(self.text_pieces(ids))

    def text_pieces(self, ids: Sequence[int], pieces: Sequence[str] | None = None) -> list[str]:
        """The pieces `decode` joins: up to EOS, without PAD/BOS. `pieces`, one per id, stand in
        for the vocabulary's (replace_unk's copies)."""
        shown = self.pieces(ids) if pieces is None else pieces
        out: list[str] = []
        for i, piece in zip(ids, shown, strict=True):
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(piece)
        return out

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = {
            "kind": self.kind,
            "normalization": self.normalization,
            "lowercase": self.lowercase,
            "tokens": list(self.tokens),
        }
        if self.kind == "bpe":  # char and word dicts stay as they always were
            data["merges"] = [list(m) for m in self.merges]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        missing = {"kind", "tokens"} - set(data)
        if missing:
            raise TokenizerError(f"tokeniser settings lack {sorted(missing)}")
        return cls(
            kind=data["kind"],
            tokens=list(data["tokens"]),
            normalization=data.get("normalization", "NFC"),
            lowercase=bool(data.get("lowercase", False)),
            merges=[tuple(m) for m in data.get("merges", [])],
        )
