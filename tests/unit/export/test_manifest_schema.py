"""manifest.json against export/manifest.schema.json: the export's output, the shipped default
bundle, and manifests the schema must reject (so the check can fail)."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from export.manifest import load_schema
from s2s.bundle import DEFAULT_BUNDLE_DIR, MANIFEST, sha256_file


@pytest.fixture(scope="module")
def validator():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def manifest(tiny_bundle) -> dict:
    return json.loads((tiny_bundle / MANIFEST).read_text())


def test_exported_manifest_is_valid(validator, manifest):
    validator.validate(manifest)


def test_shipped_default_manifest_is_valid(validator):
    validator.validate(json.loads((DEFAULT_BUNDLE_DIR / MANIFEST).read_text()))


def test_manifest_records_what_the_issue_asks_for(manifest, tiny_bundle, tiny):
    model, checkpoint = tiny
    assert manifest["model"]["cell"] == model.cfg.cell and manifest["model"]["hidden"] == model.cfg.hidden
    assert manifest["src_tokenizer"] == checkpoint["src_tokenizer"]
    assert manifest["training"]["steps"] == checkpoint["train"]["steps"]
    assert manifest["exporter"]["opset"] == 17
    assert manifest["state"] == ["h", "c"]
    assert manifest["graphs"]["encoder"]["dynamic_axes"]["src_ids"] == {"0": "batch", "1": "src_len"}
    assert manifest["graphs"]["decoder_step"]["dynamic_axes"]["topk_ids"] == {"0": "rows", "1": "k"}
    on_disk = {p.name for p in tiny_bundle.iterdir()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk, "every file in the bundle has a checksum, and only those"
    for name, digest in manifest["files"].items():
        assert sha256_file(tiny_bundle / name) == digest
    assert manifest["validation"]["max_abs_diff_log_probs"] <= manifest["validation"]["tolerance"] == 1e-4
    assert set(manifest["variants"]) == {"int8", "fp16"}


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: m.update(format_version=2),
        lambda m: m["files"].update({"encoder.onnx": "not-a-sha"}),
        lambda m: m["graphs"].pop("decoder_step"),
        lambda m: m["model"].update(cell="transformer"),
        lambda m: m.update(state=["c"]),
        lambda m: m["src_tokenizer"]["tokens"].__setitem__(0, "<s>"),
        lambda m: m["special_ids"].update(eos=5),
        lambda m: m["graphs"]["encoder"]["inputs"][0].update(dtype="int32"),
        lambda m: m["variants"].update(int4={"precision": "int4", "files": {}}),
        lambda m: m.update(version="../1"),
    ],
    ids=[
        "format_version",
        "sha",
        "graph",
        "cell",
        "state",
        "tokens",
        "special_ids",
        "dtype",
        "variant",
        "version",
    ],
)
def test_schema_rejects_broken_manifests(validator, manifest, breakage):
    broken = copy.deepcopy(manifest)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
