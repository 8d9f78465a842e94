"""Validation passes the real export and catches broken graphs: perturbed weights, an axis frozen
to the export example, renamed outputs; all failures are collected into one typed error."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.convert import dims_of
from export.errors import ValidationError
from export.spec import graph_specs
from export.validate import LOG_PROB_TOLERANCE, validate_graphs


@pytest.fixture
def graphs(tmp_path, tiny_bundle):
    """Fresh copies of the fp32 graphs to break."""
    paths = {}
    for graph in ("encoder", "decoder_step"):
        paths[graph] = tmp_path / f"{graph}.onnx"
        shutil.copy(tiny_bundle / f"{graph}.onnx", paths[graph])
    return paths


@pytest.fixture
def specs(tiny):
    return graph_specs(dims_of(tiny[0].cfg))


def _rewrite(path, change) -> None:
    model = onnx.load(str(path))
    change(model)
    onnx.save(model, str(path))


def _perturb_largest_weight(model: onnx.ModelProto, delta: float = 0.05) -> None:
    """Add `delta` to the largest initializer: the output projection of the decoder step."""
    init = max(model.graph.initializer, key=lambda i: int(np.prod(i.dims)))
    value = numpy_helper.to_array(init).copy()
    value.flat[::7] += delta
    init.CopyFrom(numpy_helper.from_array(value, init.name))


def _freeze_axis(model: onnx.ModelProto, output: str, axis: int, size: int) -> None:
    """Declare an output axis as a fixed number, as the dynamo exporter does with RNN time axes."""
    value = next(o for o in model.graph.output if o.name == output)
    dim = value.type.tensor_type.shape.dim[axis]
    dim.Clear()
    dim.dim_value = size


def _rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
    next(o for o in model.graph.output if o.name == old).name = new


def test_the_real_export_passes(tiny, graphs, specs):
    report = validate_graphs(tiny[0], graphs, specs)
    assert 0 <= report["max_abs_diff_log_probs"] <= LOG_PROB_TOLERANCE
    assert report["max_abs_diff_other"] <= 1e-4


def test_perturbed_weights_fail_on_values_and_name_the_largest_difference(tiny, graphs, specs):
    _rewrite(graphs["decoder_step"], _perturb_largest_weight)
    with pytest.raises(ValidationError) as info:
        validate_graphs(tiny[0], graphs, specs)
    error = info.value
    assert {f.check for f in error.failures} == {"values"}
    assert {f.graph for f in error.failures} == {"decoder_step"}
    assert error.largest_diff > LOG_PROB_TOLERANCE
    assert f"largest difference {error.largest_diff:.3g}" in str(error)
    assert any("log_probs" in f.detail for f in error.failures)


def test_frozen_source_length_is_caught_by_axes_and_shapes(tiny, graphs, specs):
    _rewrite(graphs["encoder"], lambda m: _freeze_axis(m, "memory", 1, 9))
    with pytest.raises(ValidationError) as info:
        validate_graphs(tiny[0], graphs, specs)
    checks = {f.check for f in info.value.failures}
    assert "dynamic_axes" in checks
    assert any("memory is declared ['batch', 9, 32]" in f.detail for f in info.value.failures)


def test_renamed_output_and_perturbed_weights_are_all_reported(tiny, graphs, specs):
    _rewrite(graphs["decoder_step"], lambda m: _rename_output(m, "attn", "attention"))
    _rewrite(graphs["encoder"], _perturb_largest_weight)
    with pytest.raises(ValidationError) as info:
        validate_graphs(tiny[0], graphs, specs)
    failures = info.value.failures
    assert any(f.check == "names" and f.graph == "decoder_step" and "attention" in f.detail for f in failures)
    assert any(f.check == "values" and f.graph == "encoder" for f in failures)


def test_a_graph_that_is_not_onnx_fails_the_checker(tiny, graphs, specs):
    graphs["encoder"].write_bytes(b"not a graph")
    with pytest.raises(ValidationError) as info:
        validate_graphs(tiny[0], graphs, specs)
    assert [f.check for f in info.value.failures] == ["checker"]
