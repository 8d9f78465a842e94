"""OpenNMT-style replace_unk, torch-free: `s2s evaluate` and the server both call this, so a
score measured in training is the text the server returns.

An output <unk> is replaced by the source piece its attention row weights most (OpenNMT's
`-replace_unk`), which copies names and numbers the target vocabulary lacks. The source pieces
must be the source text as cut (`Tokenizer.split`), not the vocabulary's tokens: an unknown
source word is <unk> as an id, and copying that would gain nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2s.tokenizer import UNK_ID, Tokenizer


def output_pieces(
    ids: Sequence[int],
    attention: np.ndarray | None,
    source_pieces: Sequence[str],
    tokenizer: Tokenizer,
    replace_unk: bool = True,
) -> tuple[list[str], list[bool]]:
    """Output pieces for `ids`, and for each whether it replaced an <unk>.

    attention: (len(ids), src_len) rows for these ids, or None (nothing is replaced); columns
    past len(source_pieces) are padding and never chosen."""
    pieces = tokenizer.pieces(ids)
    replaced = [False] * len(pieces)
    # No source pieces: an empty source decoded as a lone <unk> id; there is no word to copy.
    if not replace_unk or attention is None or not source_pieces:
        return pieces, replaced
    for i, token in enumerate(ids):
        if token == UNK_ID and i < len(attention):
            # The source piece as cut, spacing mark included: it was spaced that way in the source.
            pieces[i] = source_pieces[int(np.argmax(attention[i, : len(source_pieces)]))]
            replaced[i] = True
    return pieces, replaced
