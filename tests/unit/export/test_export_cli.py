"""`s2s export` end to end through the real CLI: success, and every kind of bad input gives a
clear error, a non-zero exit and nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from export.errors import Failure, ValidationError
from export.exporter import ExportConfig, export_model
from s2s.bundle import MANIFEST, load_bundle
from s2s.cli import EXIT_USAGE, main


def _export(capsys, *args) -> tuple[int, str, str]:
    code = main(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _leftovers(out_dir):
    """Everything under out_dir, hidden staging directories included."""
    return sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*")) if out_dir.exists() else []


def test_cli_writes_a_loadable_bundle(capsys, tmp_path, tiny_checkpoint_file):
    code, out, err = _export(
        capsys, tiny_checkpoint_file, "--out", tmp_path, "--name", "cli", "--version", "7"
    )
    assert code == 0, err
    bundle = load_bundle(out.strip())
    assert (bundle.name, bundle.version) == ("cli", "7")
    assert bundle.path == tmp_path / "cli" / "7"
    assert oct(bundle.path.stat().st_mode & 0o777) == oct(0o755), "a published bundle must be readable"
    assert not [p for p in _leftovers(tmp_path) if "partial" in p or "replaced" in p]


def test_missing_checkpoint_is_a_clear_error(capsys, tmp_path):
    code, _, err = _export(capsys, tmp_path / "nope.pt", "--out", tmp_path / "out")
    assert code == EXIT_USAGE
    assert "checkpoint not found" in err and "nope.pt" in err
    assert _leftovers(tmp_path / "out") == []


def test_corrupt_checkpoint_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04 this is not a checkpoint" * 10)
    code, _, err = _export(capsys, bad, "--out", tmp_path / "out")
    assert code == EXIT_USAGE
    expected = f"{bad} is not an s2s checkpoint: not a file written by torch.save"
    assert err.strip() == f"s2s export: error: {expected}"  # one line, none of torch's advice
    assert _leftovers(tmp_path / "out") == []


def test_unknown_checkpoint_format_version_is_a_clear_error(capsys, tmp_path, tiny_checkpoint_file):
    data = torch.load(tiny_checkpoint_file, weights_only=True)
    data["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(data, future)
    code, _, err = _export(capsys, future, "--out", tmp_path / "out")
    assert code == EXIT_USAGE
    assert "format version 99" in err
    assert _leftovers(tmp_path / "out") == []


def test_existing_version_is_refused_without_force_and_replaced_with_it(
    capsys, tmp_path, tiny_checkpoint_file
):
    args = (
        tiny_checkpoint_file,
        "--out",
        tmp_path,
        "--name",
        "m",
        "--version",
        "1",
        "--optimization-level",
        "disable",
    )
    assert _export(capsys, *args)[0] == 0
    bundle_dir = tmp_path / "m" / "1"
    sentinel = bundle_dir / "left-by-the-old-export"
    sentinel.write_text("old")
    manifest_before = (bundle_dir / MANIFEST).read_bytes()

    code, _, err = _export(capsys, *args)
    assert code == EXIT_USAGE
    assert "already exists" in err and "--force" in err
    assert sentinel.exists() and (bundle_dir / MANIFEST).read_bytes() == manifest_before

    code, _, err = _export(capsys, *args, "--force")
    assert code == 0, err
    assert not sentinel.exists(), "--force must replace the old directory, not merge into it"
    load_bundle(bundle_dir)
    assert _leftovers(tmp_path / "m") == sorted(["1", *(f"1/{p.name}" for p in bundle_dir.iterdir())])


def test_failed_validation_publishes_nothing_and_keeps_the_old_bundle(tmp_path, tiny, monkeypatch):
    model, checkpoint = tiny
    config = ExportConfig(out_dir=tmp_path, name="m", optimization_level="disable")
    old = export_model(model, checkpoint, config)
    old_manifest = (old / MANIFEST).read_bytes()

    def failing_validation(*args, **kwargs):
        raise ValidationError(
            [Failure("values", "decoder_step", "log_probs: max abs diff 0.5 > 0.0001", 0.5)]
        )

    monkeypatch.setattr("export.exporter.validate_graphs", failing_validation)
    with pytest.raises(ValidationError, match="largest difference 0.5"):
        export_model(model, checkpoint, ExportConfig(out_dir=tmp_path, name="m", version="2"))
    with pytest.raises(ValidationError):
        export_model(model, checkpoint, ExportConfig(out_dir=tmp_path, name="m", force=True))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"], "no staging directory may remain"
    assert (old / MANIFEST).read_bytes() == old_manifest


def test_bad_name_or_version_is_rejected_before_any_work(capsys, tmp_path, tiny_checkpoint_file):
    code, _, err = _export(capsys, tiny_checkpoint_file, "--out", tmp_path, "--version", "../escape")
    assert code == EXIT_USAGE and "version '../escape'" in err
    code, _, err = _export(capsys, tiny_checkpoint_file, "--out", tmp_path, "--name", "a/b")
    assert code == EXIT_USAGE and "model name 'a/b'" in err
    assert _leftovers(tmp_path) == []


def test_serving_side_modules_do_not_import_torch():
    code = (
        "import argparse, sys, export.cli, engine.decode, s2s.bundle;"
        "export.cli.add_commands(argparse.ArgumentParser().add_subparsers());"
        "heavy = [m for m in ('torch', 'onnx') if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
