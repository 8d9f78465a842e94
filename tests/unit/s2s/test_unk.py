"""s2s/unk.py: the replace_unk shared by `s2s evaluate` and the server."""

from __future__ import annotations

import numpy as np

from s2s.tokenizer import UNK_ID, Tokenizer
from s2s.unk import output_pieces

TGT = Tokenizer.build(["le chat"], kind="word")
LE = TGT.encode("le")[0]


def test_the_most_attended_source_piece_is_copied_and_padding_never_is() -> None:
    source = Tokenizer.build(["x"], kind="word").split("the Zorg")  # as cut: ["▁the", "▁Zorg"]
    attention = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7]], dtype=np.float32)  # column 2: padding
    assert output_pieces([LE, UNK_ID], attention, source, TGT) == (["▁le", "▁Zorg"], [False, True])


def test_nothing_is_replaced_without_attention_a_source_or_the_switch() -> None:
    attention = np.ones((1, 1), dtype=np.float32)
    expected = (["<unk>"], [False])
    assert output_pieces([UNK_ID], None, ["▁Zorg"], TGT) == expected
    assert output_pieces([UNK_ID], attention, [], TGT) == expected  # an empty source
    assert output_pieces([UNK_ID], attention, ["▁Zorg"], TGT, replace_unk=False) == expected
