"""Prove the exported graphs compute what the PyTorch model computes (optimum's order of checks).

With real ONNX Runtime sessions, for each graph, in order:
  1. checker:      onnx.checker passes (full check, with shape inference);
  2. names:        the session's input and output names are the spec's, in order;
  3. dynamic_axes: every axis the spec calls dynamic is recorded as that symbolic name (not as a
                   number frozen from the export example), and every fixed axis has its size;
  4. shapes:       at batch sizes, source lengths and k other than the example's, each output's
                   real shape equals its declared shape resolved with those sizes;
  5. values:       encoder outputs, and every output of several decoder steps fed the reference's
                   own inputs, against PyTorch: max abs difference <= the tolerance (log-probs:
                   LOG_PROB_TOLERANCE in fp32).
Every failure is collected; one ValidationError lists them and names the largest difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ortc

from export.dummy_inputs import CHECK_CASES, CheckCase, source_batch
from export.errors import Failure, ValidationError
from export.spec import BATCH, K, ROWS, SRC_LEN, GraphSpec

LOG_PROB_TOLERANCE = 1e-4  # fp32: max abs difference of log-probs per step (the bar)
VALUE_TOLERANCE = 1e-4  # fp32: every other float output (memory, keys, state, feed, attention)
FP32_TOLERANCE = {"log_probs": LOG_PROB_TOLERANCE, "other": VALUE_TOLERANCE}
# ONNX Runtime's Python errors derive from Exception only; these are the ones a bad graph raises.
ORT_ERRORS = (_ortc.Fail, _ortc.InvalidArgument, _ortc.InvalidGraph, _ortc.RuntimeException, _ortc.NotImplemented)
CHECK_STEPS = 4  # decoder steps per check case; the step inputs after the first are real states


def _declared(value_info) -> list[str | int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None) for d in dims]


def _check_structure(path: Path, spec: GraphSpec, label: str, failures: list[Failure], check_onnx: bool) -> bool:
    """Checks 1-3. Returns False when the graph cannot even be loaded."""
    try:
        if check_onnx:
            onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        failures.append(Failure("checker", label, f"onnx.checker: {exc}"))
        return False
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    for kind, actual, expected in (("inputs", inputs, spec.inputs), ("outputs", graph.output, spec.outputs)):
        names = [v.name for v in actual]
        if names != [t.name for t in expected]:
            failures.append(Failure("names", label, f"{kind} are {names}, expected {[t.name for t in expected]}"))
            continue
        for value, tensor in zip(actual, expected, strict=True):
            declared = _declared(value)
            if declared != list(tensor.shape):
                failures.append(
                    Failure(
                        "dynamic_axes",
                        label,
                        f"{tensor.name} is declared {declared}, expected {list(tensor.shape)} "
                        "(a number where a name is expected: an axis frozen to the export example)",
                    )
                )
    return True


def _resolve(shape: tuple[str | int, ...], sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[d] if isinstance(d, str) else d for d in shape)


def _compare(
    label: str, case: str, spec: GraphSpec, ort_out: dict, ref: dict, sizes: dict, tolerance, failures, diffs
) -> None:
    """Checks 4-5 for one run: real vs declared shapes, then values vs the reference."""
    for tensor in spec.outputs:
        got = ort_out[tensor.name]
        want_shape = _resolve(tensor.shape, sizes)
        if got.shape != want_shape:
            failures.append(Failure("shapes", label, f"{tensor.name} at {case} is {got.shape}, declared {want_shape}"))
            continue
        if tensor.name == "topk_ids":  # ids may swap at exact ties; check they index their values
            picked = np.take_along_axis(ort_out["log_probs"], got, axis=-1)
            diff = float(np.abs(picked - ort_out["topk_log_probs"]).max()) if got.size else 0.0
        else:
            diff = float(np.abs(got.astype(np.float64) - ref[tensor.name]).max()) if got.size else 0.0
        key = "log_probs" if "log_probs" in tensor.name else "other"
        diffs[key] = max(diffs[key], diff)
        limit = None if tolerance is None else tolerance[key]
        if limit is not None and not diff <= limit:  # `not <=` also catches NaN
            failures.append(
                Failure("values", label, f"{tensor.name} at {case}: max abs diff {diff:.3g} > {limit:g}", diff)
            )


def validate_graphs(
    model: torch.nn.Module,
    paths: dict[str, Path],
    specs: dict[str, GraphSpec],
    *,
    label: str = "",
    tolerance: dict[str, float] | None = FP32_TOLERANCE,
    providers: list[str] | None = None,
    cases: tuple[CheckCase, ...] = CHECK_CASES,
    steps: int = CHECK_STEPS,
    check_onnx: bool = True,
) -> dict:
    """Validate the encoder and decoder_step graphs at `paths` against `model` (eval mode).

    tolerance: {"log_probs": ..., "other": ...}; None measures and reports differences without a
    limit (int8: its accuracy is judged by exact match / BLEU, see export/quantize.py).
    check_onnx=False skips onnx.checker, for graphs ONNX Runtime optimised (they may hold its own
    com.microsoft operators, unknown to the checker).
    Returns the report (max differences, cases) for the manifest; raises ValidationError.
    """
    failures: list[Failure] = []
    sessions = {}
    for name in ("encoder", "decoder_step"):
        graph_label = f"{name}[{label}]" if label else name
        if _check_structure(paths[name], specs[name], graph_label, failures, check_onnx):
            opts = ort.SessionOptions()
            opts.log_severity_level = 3  # shape mismatches are our failures to report, not log spam
            try:
                sessions[name] = ort.InferenceSession(
                    str(paths[name]), opts, providers=providers or ["CPUExecutionProvider"]
                )
            except ORT_ERRORS as exc:
                failures.append(Failure("checker", graph_label, f"ONNX Runtime cannot load it: {exc}"))
    if len(sessions) < 2:
        raise ValidationError(failures)
    diffs = {"log_probs": 0.0, "other": 0.0}
    model.eval()
    state_names = list(model.cfg.state_names)
    gen = torch.Generator().manual_seed(1234)
    for case in cases:
        try:
            _run_case(model, sessions, specs, state_names, case, label, tolerance, gen, steps, failures, diffs)
        except (*ORT_ERRORS, RuntimeError, ValueError) as exc:
            failures.append(Failure("shapes", label or "graphs", f"running at {case.name} failed: {exc}"))
    if failures:
        raise ValidationError(failures)
    return {
        "tolerance": tolerance["log_probs"] if tolerance else None,
        "max_abs_diff_log_probs": diffs["log_probs"],
        "max_abs_diff_other": diffs["other"],
        "cases": [c.name for c in cases],
        "steps": steps,
    }


def _run_case(model, sessions, specs, state_names, case, label, tolerance, gen, steps, failures, diffs):
    cfg = model.cfg
    src, lengths = source_batch(case.lengths, cfg.src_vocab_size, gen)
    B, T = src.shape
    enc_label = f"encoder[{label}]" if label else "encoder"
    step_label = f"decoder_step[{label}]" if label else "decoder_step"
    with torch.no_grad():
        enc = model.encode(src, lengths)
    enc_ref = {"memory": enc.memory, "keys": enc.keys}
    enc_ref.update({f"init_{n}": s for n, s in zip(state_names, enc.state, strict=True)})
    enc_ref = {k: v.double().numpy() for k, v in enc_ref.items()}
    names = [o.name for o in sessions["encoder"].get_outputs()]
    enc_out = dict(zip(names, sessions["encoder"].run(names, {"src_ids": src.numpy(), "src_lengths": lengths.numpy()}), strict=True))
    sizes = {BATCH: B, ROWS: B, SRC_LEN: T, K: min(case.k, cfg.tgt_vocab_size)}
    _compare(enc_label, case.name, specs["encoder"], enc_out, enc_ref, sizes, tolerance, failures, diffs)

    # Decoder steps fed the reference's inputs: each step is checked on its own, so a difference
    # is not amplified by earlier steps.
    state, feed = enc.state, torch.zeros(B, cfg.hidden)
    mask = model.source_mask(lengths, T)
    prev = torch.full((B,), 1, dtype=torch.int64)  # <bos>
    k = torch.tensor([sizes[K]], dtype=torch.int64)
    step_names = [o.name for o in sessions["decoder_step"].get_outputs()]
    for step in range(steps):
        feeds = {"prev_tokens": prev, "feed": feed, "memory": enc.memory, "keys": enc.keys, "src_mask": mask, "k": k}
        feeds.update(dict(zip(state_names, state, strict=True)))
        with torch.no_grad():
            out = model.decode_step(prev, state, feed, enc.memory, enc.keys, mask)
        top_values, _ = torch.topk(out.log_probs, int(k[0]), dim=-1)
        ref = {f"{n}_out": s for n, s in zip(state_names, out.state, strict=True)}
        ref.update(feed_out=out.feed, attn=out.attn, topk_log_probs=top_values, log_probs=out.log_probs)
        ref = {name: v.double().numpy() for name, v in ref.items()}
        got = sessions["decoder_step"].run(step_names, {n: v.numpy() for n, v in feeds.items()})
        _compare(
            step_label, f"{case.name},step={step}", specs["decoder_step"],
            dict(zip(step_names, got, strict=True)), ref, sizes, tolerance, failures, diffs,
        )  # fmt: skip
        state, feed, prev = out.state, out.feed, out.log_probs.argmax(-1)
