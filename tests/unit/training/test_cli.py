"""`s2s train / evaluate / plot-attention`: torch-free registration, config files, real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s2s.cli import EXIT_USAGE, build_parser, main
from training.cli import config_from_args
from training.config import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_registering_the_commands_does_not_import_torch() -> None:
    code = "import sys, s2s.cli; s2s.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_train_option_has_help_and_a_default() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("train", "evaluate", "plot-attention", "plot-curves"):
        for action in sub.choices[name]._actions:
            if action.dest != "help":
                assert action.help and "default:" in action.help, (name, action.dest)


def test_config_file_fills_options_the_command_line_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("hidden: 64\nscore: dot\nlr: 1\n", encoding="utf-8")
    args = build_parser().parse_args(["train", "--config", str(path), "--score", "additive"])
    cfg = config_from_args(args)
    assert (cfg.hidden, cfg.score, cfg.lr) == (64, "additive", 1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"hiden": 64}', "unknown key 'hiden'"),
        ('{"hidden": "big"}', "hidden must be int"),
        ("[1]", "mapping"),
    ],
)
def test_config_file_rejects_unknown_keys_and_wrong_types(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    args = build_parser().parse_args(["train", "--config", str(path)])
    with pytest.raises(ConfigError, match=message):
        config_from_args(args)


def test_train_evaluate_and_plot_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "dates"
    assert (
        main(
            [
                "train",
                "--out",
                str(out),
                "--dates-train",
                "512",
                "--dates-valid",
                "64",
                "--hidden",
                "32",
                "--emb-dim",
                "16",
                "--epochs",
                "1",
                "--no-progress",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    ckpt = str(out / "checkpoint.pt")
    report = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--limit",
                "20",
                "--beam-sizes",
                "1,2",
                "--output",
                str(report),
            ]
        )
        == 0
    )
    results = json.loads(report.read_text())["results"]
    assert [r["beam_size"] for r in results] == [1, 2] and results[0]["sentences"] == 20
    assert not any(r["replace_unk"] for r in results)
    args = ["evaluate", "--checkpoint", ckpt, "--limit", "20", "--beam-sizes", "1", "--replace-unk"]
    assert main([*args, "--output", str(report)]) == 0
    [result] = json.loads(report.read_text())["results"]
    assert result["replace_unk"] and result["unk_replaced"] == result["unk_tokens"]
    png = tmp_path / "a.png"
    assert main(["plot-attention", "--checkpoint", ckpt, "--text", "10 July 2007", "--output", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


def test_missing_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == EXIT_USAGE
