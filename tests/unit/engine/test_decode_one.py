"""engine/decode.py, the per-request decoder, on the shipped bundle: limits, attention, n-best,
every precision, bad input. (Its equality with the PyTorch reference: tests/unit/export.)"""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import DecodeConfig, max_output_length
from engine.decode import Decoder
from engine.sessions import RunnerConfig


@pytest.fixture(scope="module")
def decoder(bundle, runner):
    return Decoder(runner, bundle)


def test_max_output_length():
    assert max_output_length(10, 128, 3.0) == 30
    assert max_output_length(10, 20, 3.0) == 20
    assert max_output_length(10, 20, 0.0) == 20, "ratio 0 means no ratio cap"
    assert max_output_length(10, 20, None) == 20, "None means no ratio cap"
    assert max_output_length(1, 128, 0.1) == 1, "never below one token"


def test_unset_config_fields_take_the_bundle_s_caps():
    assert DecodeConfig().resolve(128, 3.0).max_len_for(10) == 30
    assert DecodeConfig(max_length=5).resolve(128, 3.0).max_len_for(10) == 5
    assert DecodeConfig(max_length_ratio=0.0).resolve(128, 3.0).max_len_for(10) == 128, "0: no ratio cap"
    assert DecodeConfig().resolve(128, None) == DecodeConfig(max_length=128, max_length_ratio=0.0)
    with pytest.raises(ValueError, match="resolve"):
        DecodeConfig().max_len_for(10)  # the bundle's caps are not known here


def test_every_precision_of_the_shipped_bundle_translates_dates(bundle):
    for precision in ("fp32", "int8", "fp16"):
        for optimized in (False, True):
            config = RunnerConfig(precision=precision, use_saved_optimized=optimized, intra_op_threads=1)
            decoder = Decoder.open(bundle.path, config)
            for text, iso in (("Tuesday, 10 July 2007", "2007-07-10"), ("3 de marzo de 1999", "1999-03-03")):
                out, hyp = decoder.translate(text, DecodeConfig(beam_size=3))[0]
                assert (out, hyp.finish_reason) == (iso, "eos"), (precision, optimized, text)


def test_length_cap_stops_with_max_length(decoder):
    [hyp] = decoder.decode_ids(
        decoder.bundle.src_tokenizer.encode("10 July 2007"), DecodeConfig(max_length=3)
    )
    assert len(hyp.tokens) == 3 and hyp.finish_reason == "max_length"


def test_n_best_are_distinct_and_ranked(decoder):
    hyps = decoder.decode_ids(
        decoder.bundle.src_tokenizer.encode("3/4/99"), DecodeConfig(beam_size=5, n_best=5, length_penalty=0.6)
    )
    assert len(hyps) == 5
    assert len({tuple(h.tokens) for h in hyps}) == 5
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_attention_rows_cover_the_source(decoder):
    src = decoder.bundle.src_tokenizer.encode("Tuesday, 10 July 2007")
    [hyp] = decoder.decode_ids(src, DecodeConfig(beam_size=2, keep_attention=True))
    assert hyp.attention.shape[1] == len(src)
    assert hyp.attention.shape[0] >= len(hyp.tokens)
    assert np.allclose(hyp.attention.sum(axis=1), 1.0, atol=1e-5)


def test_empty_source_is_refused(decoder):
    with pytest.raises(ValueError, match="empty source"):
        decoder.decode_ids([])
