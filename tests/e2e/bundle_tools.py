"""Bundles made from the e2e bundle for the fault and reload tests (imported as `bundle_tools`):
a copy under another name or version, and a decoder graph that really fails inside ONNX Runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from s2s.bundle import MANIFEST, sha256_file


def _rewrite_manifest(bundle: Path, **changes) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest.update(changes)
    manifest["files"] = {
        name: sha256_file(bundle / name) for name in manifest["files"] if (bundle / name).exists()
    }
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def copy_bundle(source: Path, root: Path, name: str | None = None, version: str | None = None) -> Path:
    """`source` copied to ROOT/<name>/<version>/ with its manifest saying so."""
    manifest = json.loads((source / MANIFEST).read_text())
    name, version = name or manifest["name"], version or manifest["version"]
    target = root / name / version
    shutil.copytree(source, target)
    _rewrite_manifest(target, name=name, version=version)
    return target


def trap_decoder(bundle: Path, known_tokens: int = 3) -> Path:
    """Make the decoder step fail in ONNX Runtime whenever a previous token is >= known_tokens
    (a Gather out of bounds), so step 0 (prev = <bos>) runs and every later step fails. The saved
    optimised graphs are dropped, so the runner loads the trapped one."""
    import onnx
    from onnx import helper, numpy_helper

    path = bundle / "decoder_step.onnx"
    model = onnx.load(path)
    graph = model.graph
    # The top-k scores are the last thing the graph computes (nothing inside reads them): the
    # node that made them now makes topk_raw, and the trap adds 0 to it.
    assert not any("topk_log_probs" in node.input for node in graph.node)
    for node in graph.node:
        node.output[:] = ["topk_raw" if out == "topk_log_probs" else out for out in node.output]
    table = numpy_helper.from_array(np.zeros(known_tokens, dtype=np.float32), "trap_table")
    axis = numpy_helper.from_array(np.ones(1, dtype=np.int64), "trap_axis")
    graph.initializer.extend([table, axis])
    graph.node.extend(
        [
            helper.make_node(
                "Gather", ["trap_table", "prev_tokens"], ["trap_values"]
            ),  # (R,); fails out of bounds
            helper.make_node("Unsqueeze", ["trap_values", "trap_axis"], ["trap_column"]),  # (R, 1)
            helper.make_node("Add", ["topk_raw", "trap_column"], ["topk_log_probs"]),  # + 0: unchanged
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    for file in manifest.get("optimized", {}).get("files", {}).values():
        (bundle / file).unlink(missing_ok=True)
    manifest.pop("optimized", None)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))
    _rewrite_manifest(bundle)
    return bundle
