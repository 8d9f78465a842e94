"""manifest.json: everything the server needs besides the graphs (docs/design.md, "The bundle").

The schema (export/manifest.schema.json) is the full contract; s2s/bundle.py reads it without
jsonschema. Built here from the checkpoint (config, tokenisers, training data and metrics), the
graph specs, and the files actually written, with the sha256 of each.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import torch

from export.spec import GraphSpec
from s2s import __version__
from s2s.bundle import FORMAT, FORMAT_VERSION, MANIFEST, sha256_file
from s2s.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

SCHEMA_PATH = Path(__file__).resolve().parent / "manifest.schema.json"
EXPORT_TOOL = "s2s export"
_MODEL_FIELDS = (
    "cell", "score", "emb_dim", "hidden", "layers", "bidirectional", "attn_dim",
    "src_vocab_size", "tgt_vocab_size",
)  # fmt: skip


def json_safe(value: Any) -> Any:
    """Training info as JSON: tensors and numpy scalars to numbers, paths to strings, NaN to null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def training_info(checkpoint: dict) -> dict:
    """{data, steps, metrics, ...} from the checkpoint's "train" entry, JSON-safe."""
    train = json_safe(checkpoint.get("train") or {})
    if not isinstance(train, dict):
        train = {"info": train}
    train.setdefault("data", None)
    train.setdefault("steps", None)
    train.setdefault("metrics", None)
    if not isinstance(train["steps"], int):
        train["steps"] = None
    if not isinstance(train["metrics"], dict):
        train["metrics"] = None if train["metrics"] is None else {"value": train["metrics"]}
    return train


def hash_files(directory: Path) -> dict[str, str]:
    """sha256 of every file in the bundle directory except the manifest itself."""
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}


def build_manifest(
    *,
    name: str,
    version: str,
    config: Any,  # training.model.ModelConfig
    checkpoint: dict,
    specs: dict[str, GraphSpec],
    directory: Path,
    opset: int,
    validation: dict,
    variants: dict[str, dict],
    optimized: dict | None,
    max_length: int,
    max_length_ratio: float,
    folded: tuple[str, ...] = (),
) -> dict:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exporter": {
            "tool": EXPORT_TOOL,
            "version": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "opset": opset,
            "converter": "torch.onnx TorchScript exporter (dynamo=False)",
            "folded": list(folded),  # constant products taken into the step graph (export/wrappers.py)
        },
        "model": {field: getattr(config, field) for field in _MODEL_FIELDS},
        "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID},
        "src_tokenizer": checkpoint["src_tokenizer"],
        "tgt_tokenizer": checkpoint["tgt_tokenizer"],
        "graphs": {graph: spec.to_json() for graph, spec in specs.items()},
        "state": list(config.state_names),
        "files": hash_files(directory),
        "training": training_info(checkpoint),
        "variants": variants,
        "validation": validation,
        "defaults": {"max_length": max_length, "max_length_ratio": max_length_ratio},
    }
    # attn_dim as the graphs see it: the keys' width (H for dot/general, whatever the config says).
    manifest["model"]["attn_dim"] = config.key_dim
    if optimized:
        manifest["optimized"] = optimized
    return manifest


def write_manifest(directory: Path, manifest: dict) -> Path:
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
