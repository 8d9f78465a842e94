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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as _ortc

from export.dummy_inputs import CHECK_CASES, CheckCase, source_batch
from export.errors import Failure, ValidationError
from export.spec import BATCH, ROWS, SRC_LEN, GraphSpec, K
from s2s.tokenizer import BOS_ID

LOG_PROB_TOLERANCE = 1e-4  # fp32: max abs difference of log-probs per step (the bar)
VALUE_TOLERANCE = 1e-4  # fp32: every other float output (memory, keys, state, feed, attention)
FP32_TOLERANCE = {"log_probs": LOG_PROB_TOLERANCE, "other": VALUE_TOLERANCE}
# ONNX Runtime's Python errors derive from Exception only; these are the ones a bad graph raises.
ORT_ERRORS = (
    _ortc.Fail,
    _ortc.InvalidArgument,
    _ortc.InvalidGraph,
    _ortc.RuntimeException,
    _ortc.NotImplemented,
)
CHECK_STEPS = 4  # decoder steps per check case; the step inputs after the first are real states


def _declared(value_info) -> list[str | int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [
        d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
        for d in dims
    ]


def _check_structure(
    path: Path, spec: GraphSpec, label: str, failures: list[Failure], check_onnx: bool
) -> bool:
    """Checks 1-3. Returns False when the graph cannot be run against the spec (checker or names)."""
    try:
        if check_onnx:
            onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        failures.append(Failure("checker", label, f"onnx.checker: {exc}"))
        return False
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    names_ok = True
    for kind, actual, expected in (("inputs", inputs, spec.inputs), ("outputs", graph.output, spec.outputs)):
        names = [v.name for v in actual]
        if names != [t.name for t in expected]:
            failures.append(
                Failure("names", label, f"{kind} are {names}, expected {[t.name for t in expected]}")
            )
            names_ok = False
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
    return names_ok


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
            failures.append(
                Failure("shapes", label, f"{tensor.name} at {case} is {got.shape}, declared {want_shape}")
            )
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
                Failure(
                    "values", label, f"{tensor.name} at {case}: max abs diff {diff:.3g} > {limit:g}", diff
                )
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
    diffs = {"log_probs": 0.0, "other": 0.0}
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    # Each graph is run on its own against the reference's inputs, so one broken graph does not
    # hide the other's failures, and a difference is not amplified by an earlier one.
    for case in cases:
        src, lengths = source_batch(case.lengths, model.cfg.src_vocab_size, gen)
        sizes = {
            BATCH: src.size(0),
            ROWS: src.size(0),
            SRC_LEN: src.size(1),
            K: min(case.k, model.cfg.tgt_vocab_size),
        }
        for name, run in (("encoder", _check_encoder), ("decoder_step", _check_steps)):
            if name not in sessions:
                continue
            graph_label = f"{name}[{label}]" if label else name
            check = _Check(graph_label, specs[name], sizes, tolerance, failures, diffs)
            try:
                run(model, sessions[name], src, lengths, check, case.name, steps)
            except (*ORT_ERRORS, RuntimeError, ValueError) as exc:
                failures.append(Failure("shapes", graph_label, f"running at {case.name} failed: {exc}"))
    if failures:
        raise ValidationError(failures)
    return {
        "tolerance": tolerance["log_probs"] if tolerance else None,
        "max_abs_diff_log_probs": diffs["log_probs"],
        "max_abs_diff_other": diffs["other"],
        "cases": [c.name for c in cases],
        "steps": steps,
    }


@dataclass
class _Check:
    """Where one graph's run reports: its label, spec, the case's axis sizes, limits, results."""

    label: str
    spec: GraphSpec
    sizes: dict[str, int]
    tolerance: dict[str, float] | None
    failures: list[Failure]
    diffs: dict[str, float]

    def compare(self, case: str, session: ort.InferenceSession, feeds: dict, ref: dict) -> None:
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(names, {k: v.numpy() for k, v in feeds.items()}), strict=True))
        ref = {k: v.double().numpy() for k, v in ref.items()}
        _compare(self.label, case, self.spec, got, ref, self.sizes, self.tolerance, self.failures, self.diffs)


def _check_encoder(model, session, src, lengths, check: _Check, case: str, steps: int) -> None:
    with torch.no_grad():
        enc = model.encode(src, lengths)
    ref = {"memory": enc.memory, "keys": enc.keys}
    ref.update({f"init_{n}": s for n, s in zip(model.cfg.state_names, enc.state, strict=True)})
    check.compare(case, session, {"src_ids": src, "src_lengths": lengths}, ref)


def _check_steps(model, session, src, lengths, check: _Check, case: str, steps: int) -> None:
    """`steps` decoder steps, each fed the reference's own inputs (greedy tokens, real states)."""
    state_names = model.cfg.state_names
    with torch.no_grad():
        enc = model.encode(src, lengths)
    B, T = src.shape
    state, feed = enc.state, torch.zeros(B, model.cfg.hidden)
    mask = model.source_mask(lengths, T)
    prev = torch.full((B,), BOS_ID, dtype=torch.int64)
    k = torch.tensor([check.sizes[K]], dtype=torch.int64)
    for step in range(steps):
        feeds = {
            "prev_tokens": prev,
            "feed": feed,
            "memory": enc.memory,
            "keys": enc.keys,
            "src_mask": mask,
            "k": k,
        }
        feeds.update(dict(zip(state_names, state, strict=True)))
        with torch.no_grad():
            out = model.decode_step(prev, state, feed, enc.memory, enc.keys, mask)
        top_values, _ = torch.topk(out.log_probs, int(k[0]), dim=-1)
        ref = {f"{n}_out": s for n, s in zip(state_names, out.state, strict=True)}
        ref.update(feed_out=out.feed, attn=out.attn, topk_log_probs=top_values, log_probs=out.log_probs)
        check.compare(f"{case},step={step}", session, feeds, ref)
        state, feed, prev = out.state, out.feed, out.log_probs.argmax(-1)
