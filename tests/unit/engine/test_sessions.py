"""Runner (engine/sessions.py): provider selection, session options, graph choice, and the
encoder/step contract of docs/design.md on real bundles in real ONNX Runtime sessions. Only CPU
runs here; the CUDA choice is tested through the provider-selection logic."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engine.batch import DecodeBatch
from engine.sessions import (
    GraphFiles,
    ProviderUnavailable,
    Runner,
    RunnerConfig,
    resolve_provider,
    session_options,
)
from s2s.bundle import BundleError

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


# -- provider selection ------------------------------------------------------------------------
def test_cpu_is_chosen_as_asked():
    assert resolve_provider("cpu", [CUDA, CPU], required=True) == [CPU]


def test_cuda_keeps_cpu_behind_it_for_ops_cuda_lacks():
    assert resolve_provider("cuda", [CUDA, CPU], required=True) == [CUDA, CPU]


def test_missing_cuda_falls_back_to_cpu_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.sessions"):
        assert resolve_provider("cuda", [CPU], required=False) == [CPU]
    assert "CUDAExecutionProvider is not available" in caplog.text


def test_missing_cuda_is_refused_when_required():
    with pytest.raises(ProviderUnavailable, match="required"):
        resolve_provider("cuda", [CPU], required=True)


def test_unknown_provider_is_refused():
    with pytest.raises(ValueError, match="provider must be one of"):
        resolve_provider("tpu", [CPU], required=False)


@pytest.mark.skipif(CUDA in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_runner_asked_for_cuda_here_runs_on_cpu_or_refuses(bundle, caplog):
    with caplog.at_level(logging.WARNING, logger="engine.sessions"):
        runner = Runner.from_bundle(bundle, RunnerConfig(provider="cuda", intra_op_threads=1))
    assert runner.provider == "cpu" and runner.decoder.get_providers() == [CPU]
    assert "using CPU" in caplog.text
    with pytest.raises(ProviderUnavailable):
        Runner.from_bundle(bundle, RunnerConfig(provider="cuda", require_provider=True))


# -- session options and graph choice ------------------------------------------------------------
def test_session_options_follow_the_config():
    config = RunnerConfig(intra_op_threads=3, inter_op_threads=2, optimization="basic", allow_spinning=False)
    options = session_options(config, pre_optimized=False)
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 2)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # A graph optimised offline is not optimised again.
    assert session_options(config, pre_optimized=True).graph_optimization_level == (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    with pytest.raises(ValueError, match="optimization must be one of"):
        session_options(replace(config, optimization="max"), pre_optimized=False)


def test_saved_optimized_graphs_are_used_on_their_provider_only(bundle):
    if not bundle.manifest.get("optimized"):
        pytest.skip("this bundle has no saved optimised graphs")
    on_cpu = GraphFiles.from_bundle(bundle, RunnerConfig())
    assert on_cpu.pre_optimized == (on_cpu.decoder_step.name.endswith(".opt.onnx"))
    on_cuda = GraphFiles.from_bundle(bundle, RunnerConfig(provider="cuda"))
    assert not on_cuda.pre_optimized and on_cuda.decoder_step == bundle.graph_path("decoder_step")
    plain = GraphFiles.from_bundle(bundle, RunnerConfig(use_saved_optimized=False))
    assert plain.encoder == bundle.graph_path("encoder") and not plain.pre_optimized


def test_precision_picks_the_variant_graphs(bundle):
    if "int8" not in bundle.precisions():
        pytest.skip("this bundle has no int8 variant")
    files = GraphFiles.from_bundle(bundle, RunnerConfig(precision="int8", use_saved_optimized=False))
    assert files.decoder_step == bundle.graph_path("decoder_step", "int8")
    with pytest.raises(BundleError, match="no 'int4' graphs"):
        GraphFiles.from_bundle(bundle, RunnerConfig(precision="int4"))


def test_a_missing_graph_file_is_reported(bundle, tmp_path):
    files = replace(GraphFiles.from_bundle(bundle, RunnerConfig()), encoder=Path(tmp_path / "nope.onnx"))
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        Runner(files)


def test_the_runner_checks_the_bytes_it_opens_and_reads_no_other_graph(bundle, tmp_path):
    import shutil

    from s2s.bundle import load_bundle

    copy = Path(shutil.copytree(bundle.path, tmp_path / "bundle"))
    loaded = load_bundle(copy)  # verified: every file as the manifest says
    opened = GraphFiles.from_bundle(loaded, RunnerConfig())
    assert opened.pre_optimized, "the shipped bundle has optimised graphs: the plain ones stay unread"
    (copy / "decoder_step.onnx").write_bytes(b"not a graph")  # a file the runner does not open
    Runner(opened)
    data = bytearray(opened.decoder_step.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of a weight: still a loadable graph
    opened.decoder_step.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"decoder_step\.opt\.onnx failed verification: sha256 mismatch"):
        Runner(opened)


# -- the graph contract ------------------------------------------------------------------------
def _encoded_batch(runner: Runner, lengths: list[int]) -> tuple[DecodeBatch, np.ndarray]:
    rng = np.random.default_rng(0)
    src = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    for i, n in enumerate(lengths):
        src[i, :n] = rng.integers(4, 12, n)  # ids every test vocabulary has
    enc = runner.encode(src, np.array(lengths))
    return (
        DecodeBatch.build(
            list(range(len(lengths))),
            enc.memory,
            enc.keys,
            np.array(lengths),
            enc.init_state,
            runner.graphs.bos_id,
        ),
        src,
    )


def test_encode_returns_the_documented_shapes(bundle, runner):
    enc = runner.encode(np.full((3, 7), 5, dtype=np.int64), np.array([7, 2, 5]))
    hidden, layers = bundle.model.hidden, bundle.model.layers
    assert enc.memory.shape == (3, 7, hidden) and enc.keys.shape[:2] == (3, 7)
    assert set(enc.init_state) == set(bundle.state)
    assert all(v.shape == (layers, 3, hidden) for v in enc.init_state.values())
    assert (runner.hidden, runner.layers) == (hidden, layers)


def test_step_top_k_is_the_top_of_the_full_distribution(runner):
    batch, _ = _encoded_batch(runner, [4, 9, 1])
    k = min(4, runner.graphs.tgt_vocab_size)
    out = runner.step(batch, k=k)
    assert out.topk_ids.shape == (3, k) and out.attn.shape == (3, batch.src_len)
    assert out.seconds > 0
    feeds = {"prev_tokens": batch.prev_tokens, "feed": batch.feed, "memory": batch.memory, "keys": batch.keys,
             "src_mask": batch.src_mask, "k": np.array([k]), **batch.state}  # fmt: skip
    (full,) = runner.decoder.run(["log_probs"], feeds)
    expected = np.sort(full, axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(out.topk_log_probs, expected, rtol=1e-6)
    np.testing.assert_array_equal(np.take_along_axis(full, out.topk_ids, axis=1), out.topk_log_probs)
    np.testing.assert_allclose(out.attn.sum(axis=1), 1.0, atol=1e-5)
    assert not out.attn[2, 1:].any(), "attention must not reach past a source's length"
    assert set(out.state) == set(runner.state_names)


def test_step_clamps_k_to_the_vocabulary(runner):
    batch, _ = _encoded_batch(runner, [3])
    out = runner.step(batch, k=10_000)
    assert out.topk_ids.shape == (1, runner.graphs.tgt_vocab_size)


def test_warm_up_runs_the_configured_sizes(runner):
    assert runner.warm_up() > 0


def test_a_gru_bundle_runs_with_its_single_state(tmp_path):
    pytest.importorskip("torch", reason="exporting a GRU bundle needs torch")
    from export.testing import export_tiny_bundle
    from s2s.bundle import load_bundle

    gru = load_bundle(export_tiny_bundle(tmp_path, cell="gru", train_steps=0))
    runner = Runner.from_bundle(gru, RunnerConfig(intra_op_threads=1))
    batch, _ = _encoded_batch(runner, [2, 5])
    out = runner.step(batch, k=2)
    assert list(out.state) == ["h"] and out.state["h"].shape == (gru.model.layers, 2, gru.model.hidden)


def test_the_io_binding_path_gives_the_plain_path_s_numbers(bundle, runner):
    """The CUDA path (OrtValues bound through IOBinding, encoder values cached per batch layout),
    run here on CPU so its logic is exercised without a GPU."""
    bound = Runner.from_bundle(bundle, RunnerConfig(intra_op_threads=1, io_binding=True))
    batch, _ = _encoded_batch(runner, [4, 9, 1])
    k = min(3, runner.graphs.tgt_vocab_size)
    plain, first = runner.step(batch, k), bound.step(batch, k)
    cached = bound._device.encoder
    reordered = batch.with_state(first.state, first.feed).select(np.arange(3))  # next step, same rows
    assert reordered.encoder_generation == batch.encoder_generation
    second = bound.step(reordered, k)
    assert bound._device.encoder is cached, "same layout: encoder values must not be uploaded again"
    for name in ("feed", "attn", "topk_log_probs", "topk_ids"):
        np.testing.assert_allclose(getattr(first, name), getattr(plain, name), atol=1e-6)
    np.testing.assert_allclose(second.topk_log_probs, runner.step(reordered, k).topk_log_probs, atol=1e-6)
    dropped = reordered.select(np.array([0, 2]))
    assert dropped.encoder_generation != batch.encoder_generation
    np.testing.assert_allclose(bound.step(dropped, k).attn, runner.step(dropped, k).attn, atol=1e-6)
    assert bound._device.encoder[0] == dropped.encoder_generation
