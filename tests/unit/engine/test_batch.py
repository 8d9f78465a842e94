"""DecodeBatch: build / select / concatenate keep rows, owners and padding consistent."""

from __future__ import annotations

import numpy as np
import pytest

from engine.batch import DecodeBatch

HIDDEN, KEYS, LAYERS = 4, 3, 2


def _encoded(owners: list[int], lengths: list[int], seed: int) -> DecodeBatch:
    rng = np.random.default_rng(seed)
    n, t = len(owners), max(lengths)
    memory = rng.standard_normal((n, t, HIDDEN)).astype(np.float32)
    keys = rng.standard_normal((n, t, KEYS)).astype(np.float32)
    for i, length in enumerate(lengths):  # the encoder writes zeros past each source's end
        memory[i, length:] = 0
        keys[i, length:] = 0
    state = {
        "h": rng.standard_normal((LAYERS, n, HIDDEN)).astype(np.float32),
        "c": rng.standard_normal((LAYERS, n, HIDDEN)).astype(np.float32),
    }
    return DecodeBatch.build(owners, memory, keys, np.array(lengths), state, bos_id=1)


def test_build_makes_one_bos_row_per_request_with_a_length_mask():
    batch = _encoded([7, 8, 9], [2, 5, 3], seed=0)
    assert len(batch) == 3 and batch.src_len == 5
    assert batch.prev_tokens.tolist() == [1, 1, 1]
    assert not batch.feed.any()
    assert batch.src_mask.sum(axis=1).tolist() == [2, 5, 3]
    assert batch.row_ranges() == {7: (0, 1), 8: (1, 2), 9: (2, 3)}


def test_concatenate_pads_to_the_longest_source_and_keeps_values():
    short, long = _encoded([1, 2], [2, 3], seed=1), _encoded([3], [6], seed=2)
    merged = DecodeBatch.concatenate([short, long])
    assert len(merged) == 3 and merged.src_len == 6
    assert merged.row_owner.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(merged.memory[:2, :3], short.memory)
    assert not merged.memory[:2, 3:].any() and not merged.src_mask[:2, 3:].any()
    np.testing.assert_array_equal(merged.state["c"][:, 2], long.state["c"][:, 0])
    assert merged.encoder_generation not in (short.encoder_generation, long.encoder_generation)


def test_concatenate_places_every_part_at_its_rows_whatever_the_order_of_lengths():
    parts = [_encoded([1], [4], seed=6), _encoded([2, 3], [7, 2], seed=7), _encoded([4], [1], seed=8)]
    merged = DecodeBatch.concatenate(parts)
    assert merged.src_len == 7 and merged.row_owner.tolist() == [1, 2, 3, 4]
    for part, rows in zip(parts, (slice(0, 1), slice(1, 3), slice(3, 4)), strict=True):
        t = part.src_len
        np.testing.assert_array_equal(merged.memory[rows, :t], part.memory)
        np.testing.assert_array_equal(merged.keys[rows, :t], part.keys)
        np.testing.assert_array_equal(merged.src_mask[rows, :t], part.src_mask)
        assert not merged.keys[rows, t:].any() and not merged.src_mask[rows, t:].any()
    assert merged.memory.flags.c_contiguous and merged.memory.dtype == np.float32


def test_select_within_requests_gathers_state_but_keeps_encoder_arrays():
    batch = _encoded([1, 2], [3, 4], seed=3)
    grown = batch.select(np.array([0, 0, 0, 1]), np.array([5, 6, 7, 8]))  # request 1 grows to 3 beams
    assert grown.row_owner.tolist() == [1, 1, 1, 2] and grown.prev_tokens.tolist() == [5, 6, 7, 8]
    reordered = grown.select(np.array([2, 0, 1, 3]))  # beam reordering inside request 1
    assert reordered.memory is grown.memory  # same layout: no gather of the large arrays
    assert reordered.encoder_generation == grown.encoder_generation
    np.testing.assert_array_equal(reordered.state["h"], grown.state["h"][:, [2, 0, 1, 3]])
    np.testing.assert_array_equal(reordered.prev_tokens, [7, 5, 6, 8])


def test_select_dropping_a_request_trims_padding_no_row_needs():
    batch = DecodeBatch.concatenate([_encoded([1], [2], seed=4), _encoded([2], [9], seed=5)])
    kept = batch.select(np.array([0]))
    assert kept.row_owner.tolist() == [1] and kept.src_len == 2
    assert kept.encoder_generation != batch.encoder_generation
    np.testing.assert_array_equal(kept.memory, batch.memory[:1, :2])
    assert batch.select(np.array([], dtype=np.int64)) is None


def test_selected_rows_are_contiguous_arrays_at_the_longest_remaining_source():
    batch = DecodeBatch.concatenate([_encoded([1], [2], seed=4), _encoded([2], [9], seed=5)])
    kept = batch.select(np.array([1, 1]))  # the longer request, grown to two beams: no trimming
    assert kept.row_owner.tolist() == [2, 2] and kept.src_len == 9
    np.testing.assert_array_equal(kept.memory, batch.memory[[1, 1]])
    np.testing.assert_array_equal(kept.state["c"], batch.state["c"][:, [1, 1]])
    reordered = kept.select(np.array([1, 0]))
    for arrays in (kept, reordered):  # ONNX Runtime would copy a strided input on every step
        for value in (arrays.memory, arrays.keys, arrays.src_mask, arrays.feed, *arrays.state.values()):
            assert value.flags.c_contiguous


def test_with_state_swaps_state_without_copying():
    batch = _encoded([1, 2], [3, 3], seed=6)
    h = np.ones((LAYERS, 2, HIDDEN), np.float32)
    feed = np.full((2, HIDDEN), 2, np.float32)
    moved = batch.with_state({"h": h, "c": h}, feed)
    assert moved.state["h"] is h and moved.feed is feed and moved.memory is batch.memory


def test_select_carries_a_step_s_output_state_and_gathers_only_when_rows_move():
    batch = _encoded([1, 2], [3, 3], seed=8).select(np.array([0, 0, 1]))  # (3 rows)
    rng = np.random.default_rng(9)
    state = {name: rng.standard_normal(v.shape).astype(np.float32) for name, v in batch.state.items()}
    feed = rng.standard_normal(batch.feed.shape).astype(np.float32)
    kept = batch.select(np.arange(3), np.array([4, 5, 6]), state=state, feed=feed)
    assert kept.state["h"] is state["h"] and kept.feed is feed, "every row in order: nothing to gather"
    assert kept.memory is batch.memory and kept.prev_tokens.tolist() == [4, 5, 6]
    moved = batch.select(np.array([1, 0, 2]), np.array([4, 5, 6]), state=state, feed=feed)
    expected = batch.with_state(state, feed).select(np.array([1, 0, 2]), np.array([4, 5, 6]))
    for name in state:
        np.testing.assert_array_equal(moved.state[name], expected.state[name])
    np.testing.assert_array_equal(moved.feed, feed[[1, 0, 2]])


def test_rows_of_a_request_must_be_contiguous():
    batch = _encoded([1, 2], [3, 3], seed=7).select(np.array([0, 1, 0]))
    with pytest.raises(AssertionError, match="contiguous"):
        batch.row_ranges()


def test_mismatched_shapes_are_refused_with_a_message():
    batch = _encoded([1, 2], [3, 3], seed=8)
    with pytest.raises(AssertionError, match="state 'h'"):
        DecodeBatch(
            memory=batch.memory,
            keys=batch.keys,
            src_mask=batch.src_mask,
            state={"h": batch.state["h"][:, :1]},
            feed=batch.feed,
            prev_tokens=batch.prev_tokens,
            row_owner=batch.row_owner,
        )
