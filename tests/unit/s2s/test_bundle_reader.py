"""s2s/bundle.py on hand-made bundle directories (torch-free: the reader never parses ONNX).

Every way a bundle can be unusable must raise BundleError with a message that names the problem.
"""

from __future__ import annotations

import json

import pytest

from s2s.bundle import DEFAULT_BUNDLE_DIR, MANIFEST, BundleError, find_bundles, load_bundle, sha256_file
from s2s.tokenizer import SPECIAL_TOKENS


def _tokenizer(extra: str) -> dict:
    return {"kind": "char", "normalization": "NFC", "lowercase": False, "tokens": [*SPECIAL_TOKENS, *extra]}


def _write(directory, manifest: dict) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def bundle_dir(tmp_path):
    """A structurally complete bundle whose graph files are placeholder bytes."""
    directory = tmp_path / "demo" / "3"
    directory.mkdir(parents=True)
    files = {}
    for name in ("encoder.onnx", "decoder_step.onnx", "encoder.opt.onnx", "decoder_step.opt.onnx",
                 "encoder.int8.onnx", "decoder_step.int8.onnx"):  # fmt: skip
        (directory / name).write_bytes(name.encode() * 3)
        files[name] = sha256_file(directory / name)
    manifest = {
        "format": "s2s-bundle",
        "format_version": 1,
        "name": "demo",
        "version": "3",
        "created": "2026-11-24T22:00:00Z",
        "exporter": {"tool": "s2s export", "version": "0", "torch": "x", "onnx": "x", "opset": 17},
        "model": {
            "cell": "gru",
            "score": "dot",
            "emb_dim": 8,
            "hidden": 16,
            "layers": 1,
            "bidirectional": False,
            "attn_dim": 16,
            "src_vocab_size": 7,
            "tgt_vocab_size": 6,
        },
        "special_ids": {"pad": 0, "bos": 1, "eos": 2, "unk": 3},
        "src_tokenizer": _tokenizer("abc"),
        "tgt_tokenizer": _tokenizer("xy"),
        "graphs": {
            "encoder": {"file": "encoder.onnx", "inputs": [], "outputs": [], "dynamic_axes": {}},
            "decoder_step": {"file": "decoder_step.onnx", "inputs": [], "outputs": [], "dynamic_axes": {}},
        },
        "state": ["h"],
        "files": files,
        "training": {"data": None, "steps": 5, "metrics": None},
        "optimized": {
            "onnxruntime": "0.0.0-not-this-one",
            "level": "extended",
            "provider": "CPUExecutionProvider",
            "files": {"encoder": "encoder.opt.onnx", "decoder_step": "decoder_step.opt.onnx"},
        },
        "variants": {
            "int8": {
                "precision": "int8",
                "files": {"encoder": "encoder.int8.onnx", "decoder_step": "decoder_step.int8.onnx"},
            }
        },
        "defaults": {"max_length": 20, "max_length_ratio": 2.5},
    }
    _write(directory, manifest)
    return directory


def _edit(directory, change) -> None:
    manifest = json.loads((directory / MANIFEST).read_text())
    change(manifest)
    _write(directory, manifest)


def test_loads_fields_tokenizers_and_paths(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert (bundle.name, bundle.version, bundle.state) == ("demo", "3", ["h"])
    assert bundle.model.cell == "gru" and bundle.model.tgt_vocab_size == 6
    assert bundle.src_tokenizer.encode("cab") == [6, 4, 5]
    assert bundle.tgt_tokenizer.decode([4, 5, 2, 4]) == "xy"
    assert (bundle.max_length, bundle.max_length_ratio) == (20, 2.5)
    assert bundle.precisions() == ["fp32", "int8"]
    assert bundle.graph_path("decoder_step") == bundle_dir / "decoder_step.onnx"
    assert bundle.graph_path("encoder", "int8") == bundle_dir / "encoder.int8.onnx"
    # Saved optimised graphs are used only by the onnxruntime version that wrote them.
    assert bundle.graph_path("encoder", optimized=True) == bundle_dir / "encoder.onnx"
    with pytest.raises(BundleError, match="no 'fp16' graphs"):
        bundle.graph_path("encoder", "fp16")
    assert find_bundles(bundle_dir.parent.parent) == [bundle_dir]


def test_optimised_graph_is_used_by_the_same_onnxruntime(bundle_dir):
    ort = pytest.importorskip("onnxruntime")
    _edit(bundle_dir, lambda m: m["optimized"].update(onnxruntime=ort.__version__))
    assert (
        load_bundle(bundle_dir).graph_path("decoder_step", optimized=True)
        == bundle_dir / "decoder_step.opt.onnx"
    )


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "absent")


def test_directory_without_manifest(tmp_path):
    with pytest.raises(BundleError, match=f"no {MANIFEST}"):
        load_bundle(tmp_path)


def test_corrupt_json(bundle_dir):
    (bundle_dir / MANIFEST).write_text('{"format": "s2s-bundle", ')
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_dir)


def test_unknown_format_version(bundle_dir):
    _edit(bundle_dir, lambda m: m.update(format_version=2))
    with pytest.raises(BundleError, match="unknown bundle format_version 2"):
        load_bundle(bundle_dir)


def test_not_a_bundle(bundle_dir):
    _edit(bundle_dir, lambda m: m.update(format="something-else"))
    with pytest.raises(BundleError, match="not an s2s bundle"):
        load_bundle(bundle_dir)


def test_missing_field(bundle_dir):
    _edit(bundle_dir, lambda m: m.pop("state"))
    with pytest.raises(BundleError, match="lacks required field 'state'"):
        load_bundle(bundle_dir)


def test_checksum_mismatch_names_the_file(bundle_dir):
    graph = bundle_dir / "decoder_step.onnx"
    graph.write_bytes(graph.read_bytes() + b"!")
    with pytest.raises(BundleError, match=r"decoder_step.onnx: sha256 mismatch"):
        load_bundle(bundle_dir)
    assert load_bundle(bundle_dir, verify_checksums=False).name == "demo"


def test_missing_file_and_escaping_names(bundle_dir):
    (bundle_dir / "encoder.int8.onnx").unlink()
    _edit(bundle_dir, lambda m: m["files"].update({"../outside": "0" * 64}))
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_dir)
    assert "encoder.int8.onnx: missing" in str(info.value)
    assert "../outside: file names must be relative" in str(info.value)


def test_graph_without_checksum(bundle_dir):
    _edit(bundle_dir, lambda m: m["files"].pop("encoder.onnx"))
    with pytest.raises(BundleError, match="'encoder.onnx' has no checksum"):
        load_bundle(bundle_dir)


def test_bad_vocabulary(bundle_dir):
    _edit(bundle_dir, lambda m: m["tgt_tokenizer"].update(tokens=["x", "y"]))
    with pytest.raises(BundleError, match="tgt_tokenizer is invalid"):
        load_bundle(bundle_dir)


def test_shipped_default_bundle_loads_and_verifies():
    # The repository ships it (package data); rebuild with scripts/build_default_bundle.sh.
    bundle = load_bundle(DEFAULT_BUNDLE_DIR)
    assert bundle.name == "dates" and bundle.src_tokenizer.kind == "char"
    assert set(bundle.precisions()) >= {"fp32", "int8"}
