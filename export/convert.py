"""PyTorch model -> encoder.onnx and decoder_step.onnx.

We use the TorchScript exporter (dynamo=False) on purpose (../shared/guides/ONNX-NOTES.md): with
torch 2.13 the dynamo exporter records a bidirectional RNN's time axis as the example's fixed
length, and fails on pack_padded_sequence. The TorchScript exporter turns the packed RNN into an
ONNX LSTM/GRU node with `sequence_lens`, and with dynamic_axes keeps batch and source length
dynamic. Validation (export/validate.py) checks that claim on every export.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import torch

from export.dummy_inputs import decoder_step_example, encoder_example
from export.spec import DYNAMIC_AXES, Dims, GraphSpec, graph_specs
from export.wrappers import DecoderStepGraph, EncoderGraph, FoldedDecoderStepGraph

DEFAULT_OPSET = 17  # LSTM/GRU with sequence_lens, TopK with a K input; every ONNX Runtime since 1.11
# torch's C++ shape inference prints this for every packed RNN, straight to the process's stderr
# (not a Python warning, so no `warnings` filter reaches it). Harmless for our graphs: validation
# runs them at other batch sizes and lengths on every export and would catch a wrong shape.
PACKED_RNN_NOTE = re.compile(r"The shape inference of prim::(PackPadded|PadPacked) type is missing")


@contextlib.contextmanager
def native_stderr_without(pattern: re.Pattern[str]) -> Iterator[None]:
    """Capture file descriptor 2 (what C++ code writes to) during the block, then write back every
    line that does not match `pattern`: other warnings and errors still show, in their order."""
    sys.stderr.flush()  # what Python wrote before the block goes out before it
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if not pattern.search(line.decode(errors="replace")))
            if kept:
                os.write(2, kept)


def dims_of(cfg) -> Dims:
    """The graph-shape-relevant sizes of a training.model.ModelConfig."""
    return Dims(
        cell=cfg.cell,
        hidden=cfg.hidden,
        layers=cfg.layers,
        attn_dim=cfg.key_dim,
        tgt_vocab_size=cfg.tgt_vocab_size,
    )


def _export(module: torch.nn.Module, args: tuple, path: Path, spec: GraphSpec, opset: int) -> None:
    # torch.onnx.export restores the wrapper's training flag afterwards, recursively: a wrapper
    # left in training mode would switch the model's dropout back on for everything after.
    module.eval()
    with warnings.catch_warnings(), native_stderr_without(PACKED_RNN_NOTE):
        # The legacy exporter announces its deprecation from the caller's frame; we chose it.
        warnings.filterwarnings(
            "ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        # k[0] in the step graph is a traced value on purpose; the tracer's warning about
        # tensor-to-int conversions is checked away by validation at other k and shapes.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # "batch_size other than 1 ... with LSTM": about RNNs without initial-state inputs; ours
        # get batch-sized zero states, and validation runs other batch sizes to prove it.
        warnings.filterwarnings("ignore", message=".*batch_size other than 1", category=UserWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes(),
            do_constant_folding=True,
        )
    _name_generated_dims(path, spec)
    onnx.checker.check_model(str(path), full_check=True)


def _name_generated_dims(path: Path, spec: GraphSpec) -> None:
    """Replace dims the exporter could only name by itself ("Reshapeinit_h_dim_0") with the spec's.

    The TorchScript exporter cannot infer the size of a reshaped RNN state, so init_h/init_c come
    out as [<generated>, batch, <generated>]. Only generated names and unknown dims are replaced;
    a number is never overwritten, so an axis frozen to the example still fails validation.
    """
    model = onnx.load(str(path))
    changed = False
    for value in model.graph.output:
        want = next((t.shape for t in spec.outputs if t.name == value.name), None)
        dims = value.type.tensor_type.shape.dim
        if want is None or len(dims) != len(want):
            continue  # validation reports the mismatch
        for dim, target in zip(dims, want, strict=True):
            generated = not dim.HasField("dim_value") and dim.dim_param not in DYNAMIC_AXES
            if generated:
                changed = True
                if isinstance(target, int):
                    dim.dim_value = target
                else:
                    dim.dim_param = target
    if changed:
        onnx.save(model, str(path))


def export_graphs(
    model: torch.nn.Module, out_dir: Path, opset: int = DEFAULT_OPSET, folds: tuple[str, ...] = ()
) -> dict[str, GraphSpec]:
    """Write encoder.onnx and decoder_step.onnx for `model` (put in eval mode) into `out_dir`;
    the step with `folds` taken (export/wrappers.py), the same inputs and outputs either way."""
    model.eval()
    specs = graph_specs(dims_of(model.cfg))
    with torch.no_grad():
        _export(
            EncoderGraph(model),
            encoder_example(model.cfg.src_vocab_size),
            out_dir / specs["encoder"].file,
            specs["encoder"],
            opset,
        )
        _export(
            FoldedDecoderStepGraph(model, len(model.cfg.state_names), folds)
            if folds
            else DecoderStepGraph(model, len(model.cfg.state_names)),
            decoder_step_example(model),
            out_dir / specs["decoder_step"].file,
            specs["decoder_step"],
            opset,
        )
    return specs
