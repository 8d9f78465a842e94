"""What every `s2s` subcommand shares, checked in real processes: help that says what the command
does and shows real defaults, and one exit-code convention (s2s.cli): 2 for a usage or input error,
1 for work that ran and failed, each with a one-line message."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from cli_support import s2s, train_tiny

from s2s.cli import EXIT_FAILURE, EXIT_USAGE, build_parser


def _subcommands() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_the_subcommands_are_all_there() -> None:
    names = _subcommands()
    assert {"train", "evaluate", "plot-attention", "plot-curves", "export", "bench-step"} <= set(names)


@pytest.mark.parametrize("name", _subcommands())
def test_help_says_what_the_command_does_and_shows_no_none_default(name: str) -> None:
    done = s2s(name, "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("\n\n")
    assert blocks[0].startswith("usage:"), done.stdout
    assert not blocks[1].startswith(("options:", "positional arguments:")), f"{name} has no description"
    assert "default: None" not in done.stdout.replace("\n", " ")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real checkpoint, a bundle exported from it, and files that are not what they claim."""
    tmp = tmp_path_factory.mktemp("inputs")
    ckpt = train_tiny(tmp / "tiny")
    done = s2s("export", ckpt, "--out", tmp / "bundles", "--name", "t", "--optimization-level", "disable")
    assert done.returncode == 0, done.stderr
    (tmp / "text.pt").write_text("not a checkpoint\n")
    torch.save({"options": argparse.Namespace(lr=1.0)}, tmp / "pickled.pt")  # loads only by unpickling
    (tmp / "bad.json").write_text(json.dumps({"hiden": 64}))
    nan = torch.load(ckpt, weights_only=True)
    next(iter(nan["model"].values())).fill_(float("nan"))  # PyTorch and ONNX Runtime both give NaN
    torch.save(nan, tmp / "nan.pt")
    return {"ckpt": ckpt, "bundles": tmp / "bundles", "tmp": tmp}


USAGE_ERRORS = {
    "bad flag value": (["train", "--hidden", "big"], "invalid int value"),
    "missing data file": (["train", "--data", "{tmp}/missing.tsv", "--out", "{tmp}/o"], "missing.tsv"),
    "bad config file": (["train", "--config", "{tmp}/bad.json", "--out", "{tmp}/o"], "unknown key 'hiden'"),
    "resume from a text file": (
        ["train", "--resume", "{tmp}/text.pt", "--dates-train", "64", "--out", "{tmp}/o"],
        "not an s2s checkpoint",
    ),
    "missing checkpoint": (["evaluate", "--checkpoint", "{tmp}/missing.pt"], "checkpoint not found"),
    "bad beam sizes": (["evaluate", "--checkpoint", "{ckpt}", "--beam-sizes", "0"], "beam sizes"),
    "plot from a text file": (["plot-attention", "--checkpoint", "{tmp}/text.pt"], "not an s2s checkpoint"),
    "export a text file": (
        ["export", "{tmp}/text.pt", "--out", "{tmp}/b"],
        "not a file written by torch.save",
    ),
    "export a pickled object": (["export", "{tmp}/pickled.pt", "--out", "{tmp}/b"], "argparse.Namespace"),
    "export a bad version": (["export", "{ckpt}", "--out", "{tmp}/b", "--version", "../x"], "version '../x'"),
    "export over a bundle": (["export", "{ckpt}", "--out", "{bundles}", "--name", "t"], "--force"),
    "bench-step without a bundle": (["bench-step", "--bundle", "{tmp}/missing"], "does not exist"),
    "bench without a bundle": (["bench", "--bundle", "{tmp}/missing", "--variants", "ort"], "does not exist"),
    "serve a missing bundle": (
        ["serve", "--bundle", "{tmp}/missing", "--port", "0", "--metrics-port", "off"],
        "missing",
    ),
    "serve with half a TLS pair": (["serve", "--tls-cert", "{tmp}/text.pt", "--port", "0"], "--tls-key"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_and_input_errors_exit_2_with_one_line(case: str, files: dict[str, Path]) -> None:
    args, message = USAGE_ERRORS[case]
    done = s2s(*(a.format(**files) for a in args))
    assert done.returncode == EXIT_USAGE == 2, done.stderr[-3000:]
    assert message in done.stderr, done.stderr[-3000:]
    assert len(_message_lines(done.stderr)) == 1, done.stderr
    assert "weights_only" not in done.stderr and "Traceback" not in done.stderr


def _message_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage lines (which precede its own one-line error)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(("usage:", " "))]


def test_work_that_ran_and_failed_exits_1(files: dict[str, Path]) -> None:
    out = files["tmp"] / "nan-out"
    done = s2s("export", files["tmp"] / "nan.pt", "--out", out, "--name", "nan")
    assert done.returncode == EXIT_FAILURE == 1, done.stderr[-3000:]
    assert "validation failure" in done.stderr and "Traceback" not in done.stderr
    assert not (out / "nan").exists() or not any((out / "nan").iterdir()), "nothing may be published"
