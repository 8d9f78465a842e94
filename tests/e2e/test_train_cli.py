"""`s2s train`, `evaluate` and `plot-curves` as a person meets them, in real processes: the progress
bar and the log share the terminal cleanly, bars only on a terminal, one validation at the end of
a run whose budget ran out, and the training curves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli_support import TINY_TRAIN, glued_log_records, s2s, s2s_in_terminal, screen_lines

PNG = b"\x89PNG\r\n\x1a\n"
BAR = re.compile(r"epoch 1: +\d+%")  # tqdm's "epoch 1:  45%|████▌     | 9/20 [...]"


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(checkpoint, stderr) of a tiny run with pipes for output and the progress flag left on."""
    out = tmp_path_factory.mktemp("tiny") / "dates"
    done = s2s("train", "--out", out, *TINY_TRAIN, "--epochs", "1", "--eval-every", "5")
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "checkpoint.pt", done.stderr


@pytest.fixture
def checkpoint(piped_run: tuple[Path, str]) -> Path:
    return piped_run[0]


def test_log_lines_are_not_glued_to_the_progress_bar(tmp_path: Path) -> None:
    # 20 batches an epoch, validated every 5 steps: three validations log while the bar is drawn.
    code, output = s2s_in_terminal("train", "--out", tmp_path / "run", *TINY_TRAIN, "--epochs", "1",
                                   "--eval-every", "5")  # fmt: skip
    assert code == 0, output[-3000:]
    assert BAR.search(output), "no progress bar was drawn on the terminal"
    assert len(re.findall(r"step (5|10|15): validation loss", output)) == 3, output[-3000:]
    assert glued_log_records(output) == []


def test_no_bar_when_stderr_is_not_a_terminal(piped_run: tuple[Path, str]) -> None:
    _, stderr = piped_run
    assert "step 5: validation loss" in stderr  # the run logged
    assert not BAR.search(stderr) and "\r" not in stderr, stderr[-2000:]


def test_a_budget_spent_validating_ends_the_run_without_a_second_validation(tmp_path: Path) -> None:
    # One batch an epoch and a validation set big enough that validating it outlasts the 0.2 s
    # budget: the run must stop after epoch 1's validation, not train one more step and validate
    # again. (On a machine so slow that step 1 alone spends the budget, the run stops inside
    # epoch 1 and validates once too.)
    out = tmp_path / "budget"
    done = s2s("train", "--out", out, "--dates-train", "64", "--batch-size", "64", "--dates-valid", "8000",
               "--hidden", "16", "--emb-dim", "8", "--threads", "1", "--time-budget", "0.2",
               "--epochs", "5", "--valid-bleu", "0", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    history = torch.load(out / "last.pt", weights_only=True)["train"]["history"]
    assert (history["steps"], history["valid_steps"]) == (1, [1]), history
    assert len(re.findall(r"step \d+: validation loss", done.stderr)) == 1, done.stderr


def test_training_writes_its_curves_and_plot_curves_draws_any_checkpoint(
    checkpoint: Path, tmp_path: Path
) -> None:
    assert (checkpoint.parent / "curves.png").read_bytes()[:8] == PNG
    history = torch.load(checkpoint, weights_only=True)["train"]["history"]
    # 640 pairs in batches of 32: 20 steps, validated every 5 (the epoch's end, step 20, once).
    assert history["valid_steps"] == [5, 10, 15, 20] and len(history["valid_loss"]) == 4
    assert all(0.0 <= bleu <= 100.0 for bleu in history["valid_bleu"]) and len(history["valid_bleu"]) == 4
    assert [step for step, _ in history["train_loss"]] == [5, 10, 15, 20]
    assert all(loss > 0 for _, loss in history["train_loss"])

    out = tmp_path / "again.png"
    done = s2s("plot-curves", "--checkpoint", checkpoint, "--output", out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == PNG and str(out) in done.stdout

    # A checkpoint from before the curves (validation losses only) is drawn too.
    old = torch.load(checkpoint, weights_only=True)
    old["train"]["history"] = {"valid_loss": [2.5, 1.5, 1.0], "steps": 60}
    torch.save(old, tmp_path / "old.pt")
    done = s2s("plot-curves", "--checkpoint", tmp_path / "old.pt", "--output", tmp_path / "old.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "old.png").read_bytes()[:8] == PNG


def test_plot_curves_of_a_checkpoint_without_history_is_an_input_error(
    checkpoint: Path, tmp_path: Path
) -> None:
    bare = torch.load(checkpoint, weights_only=True)
    del bare["train"]
    torch.save(bare, tmp_path / "bare.pt")
    done = s2s("plot-curves", "--checkpoint", tmp_path / "bare.pt", "--output", tmp_path / "x.png")
    assert done.returncode == 2
    assert "holds no training history" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_evaluate_shows_progress_on_a_terminal_only(checkpoint: Path) -> None:
    args = ("evaluate", "--checkpoint", checkpoint, "--limit", "40", "--beam-sizes", "1,2",
            "--batch-size", "8", "--max-len", "12", "--threads", "1")  # fmt: skip
    bar = re.compile(r"beam 2: +\d+%")
    code, output = s2s_in_terminal(*args)
    assert code == 0, output[-3000:]
    assert bar.search(output), output[-3000:]
    rows = [line.split()[0] for line in screen_lines(output) if re.match(r" +\d+ +\d+\.\d\d ", line)]
    assert rows == ["1", "2"], "the table's rows do not stand on lines of their own"
    done = s2s(*args)
    assert done.returncode == 0 and not bar.search(done.stderr) and "\r" not in done.stderr
    code, output = s2s_in_terminal(*args, "--no-progress")
    assert code == 0 and not bar.search(output)
