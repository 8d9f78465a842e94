"""Search results -> protobuf messages: detokenised text, attention, and OpenNMT-style replace_unk.

replace_unk (s2s.unk, shared with `s2s evaluate`): an output <unk> is replaced by the source piece
it attends to most. It needs the attention rows, so the servicer asks the scheduler for them
whenever replace_unk is on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2s import unk
from s2s.search import FINISH_EOS, Hypothesis
from s2s.tokenizer import Tokenizer
from s2s.v1 import translator_pb2 as pb
from service.validation import DecodeSettings, Source

FINISH_REASONS = {FINISH_EOS: pb.FINISH_REASON_EOS, "max_length": pb.FINISH_REASON_MAX_LENGTH}


def _attention(rows: np.ndarray, source: Source, target_pieces: list[str]) -> pb.Attention:
    rows = np.asarray(rows, dtype=np.float32)[:, : len(source.pieces)]  # (out_len, src_len)
    return pb.Attention(
        rows=rows.shape[0],
        cols=rows.shape[1],
        values=rows.ravel().tolist(),
        source_tokens=source.pieces,
        target_tokens=target_pieces,
    )


def hypothesis_message(
    hyp: Hypothesis, source: Source, tokenizer: Tokenizer, settings: DecodeSettings
) -> pb.Hypothesis:
    pieces, replaced = unk.output_pieces(
        hyp.tokens, hyp.attention, source.pieces, tokenizer, settings.replace_unk
    )
    message = pb.Hypothesis(
        text=tokenizer.join(pieces),
        tokens=pieces,
        token_ids=hyp.tokens,
        token_log_probs=hyp.token_log_probs,
        score=hyp.score,
        raw_score=hyp.raw_score,
        finish_reason=FINISH_REASONS.get(hyp.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
        unk_replaced=any(replaced),
    )
    if settings.return_attention and hyp.attention is not None:
        message.attention.CopyFrom(_attention(hyp.attention, source, pieces))
    return message


def translation_result(
    hypotheses: Sequence[Hypothesis], source: Source, tokenizer: Tokenizer, settings: DecodeSettings
) -> pb.TranslationResult:
    return pb.TranslationResult(
        hypotheses=[hypothesis_message(h, source, tokenizer, settings) for h in hypotheses],
        source_tokens=source.pieces,
        source_unknown_tokens=source.unknown,
    )


class StreamText:
    """Builds the stream's TokenEvent messages; keeps the pieces sent so far for `text`."""

    def __init__(self, source: Source, tokenizer: Tokenizer, settings: DecodeSettings):
        self.source, self.tokenizer, self.settings = source, tokenizer, settings
        self.pieces: list[str] = []

    @property
    def sent(self) -> int:
        return len(self.pieces)

    def events(
        self,
        position: int,
        ids: Sequence[int],
        log_probs: Sequence[float] | None,
        attention: np.ndarray | None,
    ) -> list[pb.TranslateStreamResponse]:
        """Messages for the tokens `ids` starting at output index `position`, skipping any
        already sent (the scheduler may repeat a prefix when it delivers the best tail)."""
        skip = max(0, self.sent - position)
        ids = list(ids)[skip:]
        log_probs = list(log_probs)[skip:] if log_probs is not None else None
        attention = attention[skip:] if attention is not None else None
        pieces, replaced = unk.output_pieces(
            ids, attention, self.source.pieces, self.tokenizer, self.settings.replace_unk
        )
        messages = []
        for i, (token, piece) in enumerate(zip(ids, pieces, strict=True)):
            self.pieces.append(piece)
            event = pb.TokenEvent(
                index=self.sent - 1,
                token_id=token,
                token=piece,
                text=self.tokenizer.join(self.pieces),
                unk_replaced=replaced[i],
            )
            if log_probs is not None:
                event.log_prob = log_probs[i]
            if self.settings.return_attention and attention is not None:
                event.attention.extend(np.asarray(attention[i][: len(self.source.pieces)]).tolist())
            messages.append(pb.TranslateStreamResponse(token=event))
        return messages
