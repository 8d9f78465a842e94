"""Training time and translation quality against OpenNMT-py 3.5.1, side by side on this machine:
the same data, one run after another in one invocation, each timed as a whole process.

    benchmarks/setup_opennmt.sh                  # once: an OpenNMT-py venv in artifacts/opennmt-venv
    # speed: 1,000 steps each, alternating (the 2026-11-25 comparison)
    .venv/bin/python benchmarks/train_vs_opennmt.py --recipe general --steps 1000
    # quality at the reference's size and time: OpenNMT-py's 4,000 steps beside s2s's run at the
    # measured speed ratio (tied-bpe: 0.919 of OpenNMT-py's time, so 4,350 steps), every model
    # scored on the test split (greedy and beam 5)
    .venv/bin/python benchmarks/train_vs_opennmt.py --recipe tied-bpe --onmt-steps 4000 \
        --s2s-steps 4350 --runs opennmt-py,s2s --score --threads 1

OpenNMT-py gets eng-fra's training split (line i with i % 20 not in {7, 13}) cut into word pieces by
s2s's word tokeniser (3,496 / 6,346 words with the special tokens) and the reference's model:
bidirectional LSTM encoder 2 x 128, 2-layer LSTM decoder 256 with input feeding, embeddings 128,
`general` attention, dropout 0.3, 64 sentences a batch, its default SGD; 1,106,944 + 3,825,872
parameters. s2s runs a recipe of RECIPES on the same split: its `s2s subword train` commands (if
any) and `s2s train` are timed together as its training. What is timed is process wall time,
start-up and data loading included for both; s2s also validates once an epoch (903 sentences) and
writes checkpoints, OpenNMT-py validates and saves nothing before the end (its `valid_steps` is
set past the run), so the comparison leans towards OpenNMT-py. With --score every trained model
translates the test split (untimed), and the detokenised outputs are scored by s2s's own scorer
(sacrebleu BLEU 13a and chrF against the raw reference lines): `onmt_translate` with its defaults
(length penalty avg), `s2s evaluate` with the recipe's length penalty. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.tokenizer import SPECIAL_TOKENS, Tokenizer  # noqa: E402
from training.data import read_pairs, split_pairs  # noqa: E402

ONMT_CONFIG = """\
save_data: {work}/onmt
src_vocab: {work}/vocab.src
tgt_vocab: {work}/vocab.tgt
overwrite: true
data:
  corpus_1: {{path_src: {work}/train.src, path_tgt: {work}/train.tgt}}
  valid: {{path_src: {work}/valid.src, path_tgt: {work}/valid.tgt}}
save_model: {work}/onmt-model
encoder_type: brnn
decoder_type: rnn
rnn_type: LSTM
layers: 2
hidden_size: 256
word_vec_size: 128
global_attention: general
input_feed: 1
dropout: 0.3
batch_size: 64
batch_type: sents
train_steps: {steps}
valid_steps: 1000000
save_checkpoint_steps: 1000000
report_every: 100
seed: 1234
"""

SIZE = ["--emb-dim", "128", "--hidden", "256", "--layers", "2", "--bidirectional", "--dropout", "0.3"]
# The output projection tied to the target embedding (hidden 256 -> emb -> vocabulary) frees the
# projection's parameters for wider embeddings: emb 320 with 4,000 BPE pieces a side is 5,144,992
# parameters, 4.3% above the reference's 4,932,816.
TIED_BPE = ["--hidden", "256", "--layers", "2", "--bidirectional", "--dropout", "0.3", "--emb-dim", "320",
            "--tie-embeddings"]  # fmt: skip
SCHEDULE = ["--batch-size", "64", "--lr", "0.002", "--lr-schedule", "cosine", "--warmup-steps", "100",
            "--epochs", "100", "--patience", "100", "--label-smoothing", "0.1"]  # fmt: skip
# name: (s2s train flags besides data, out, steps and threads; subword vocabularies to learn first
# as (side, size); the length penalty s2s evaluate uses, chosen on validation in docs/training.md)
RECIPES: dict[str, tuple[list[str], list[tuple[str, int]], float]] = {
    "general": (
        ["--src-kind", "word", "--tgt-kind", "word", *SIZE, "--score", "general", "--score-scale", "0.0625",
         *SCHEDULE],
        [], 1.5,
    ),
    "additive-ema": (
        ["--src-kind", "word", "--tgt-kind", "word", *SIZE, "--score", "additive", *SCHEDULE,
         "--ema-decay", "0.998"],
        [], 1.5,
    ),
    "tied-bpe": (
        [*TIED_BPE, "--score", "additive", *SCHEDULE, "--ema-decay", "0.998"],
        [("src", 4000), ("tgt", 4000)], 1.5,
    ),
}  # fmt: skip


def s2s_commands(recipe: str, data: str, out: Path, steps: int, threads: int) -> list[list[str]]:
    """The recipe's `s2s subword train` commands, then its `s2s train`, stopped after `steps`."""
    flags, subwords, _ = RECIPES[recipe]
    s2s = [sys.executable, "-m", "s2s.cli"]
    commands, files = [], []
    for side, size in subwords:
        path = out.parent / f"{out.name}-{side}-{size}.json"
        commands.append([*s2s, "subword", "train", "--data", data, "--side", side,
                         "--vocab-size", str(size), "--out", str(path)])  # fmt: skip
        files += [f"--{side}-tokenizer", str(path)]
    train = [*s2s, "train", "--data", data, "--out", str(out), *flags, *files, "--max-steps", str(steps),
             "--threads", str(threads), "--no-progress"]  # fmt: skip
    return [*commands, train]


def write_pieces(data: str, work: Path) -> list[str]:
    """Every split as space-separated word pieces, one sentence a line; returns the raw test
    references."""
    splits = split_pairs(read_pairs(data))
    words = Tokenizer("word", [*SPECIAL_TOKENS, "."])  # only split() is used: no vocabulary needed
    for name in ("train", "valid", "test"):
        for side in ("src", "tgt"):
            pairs = getattr(splits, name)
            lines = (" ".join(words.split(words.normalize(getattr(p, side)))) for p in pairs)
            (work / f"{name}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [p.tgt for p in splits.test]


def timed(commands: list[list[str]], log: Path, env: dict[str, str]) -> float:
    """Wall time of the commands run one after another, output appended to `log`."""
    started = time.perf_counter()
    with log.open("w") as out:
        for command in commands:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            if done.returncode:
                raise SystemExit(f"{command[0]} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - started


def score_onmt(onmt: Path, model: Path, work: Path, refs: list[str], env: dict[str, str]) -> dict:
    """Greedy and beam-5 test scores of an OpenNMT-py model, detokenised as s2s detokenises."""
    from training.evaluate import score

    words = Tokenizer("word", [*SPECIAL_TOKENS, "."])
    scores = {}
    for beam in (1, 5):
        out = work / f"{model.stem}.beam{beam}.txt"
        command = [str(onmt / "onmt_translate"), "-model", str(model), "-src", str(work / "test.src"),
                   "-output", str(out), "-beam_size", str(beam), "-gpu", "-1"]  # fmt: skip
        # OpenNMT-py 3.5.1 loads its own checkpoints with torch.load's pre-2.6 default: this file
        # was written by the run above.
        subprocess.run(
            command, check=True, capture_output=True, env={**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
        )
        hyps = [words.join(line.split()) for line in out.read_text(encoding="utf-8").splitlines()]
        _, bleu, chrf, _ = score(hyps, refs)
        scores[f"beam{beam}"] = {"bleu": round(bleu, 2), "chrf": round(chrf, 2)}
    return scores


def score_s2s(recipe: str, data: str, checkpoint: Path, env: dict[str, str], threads: int) -> dict:
    """Greedy and beam-5 scores of an s2s checkpoint on the test and validation splits."""
    scores = {}
    for split in ("test", "valid"):
        out = checkpoint.parent / f"{split}.json"
        command = [sys.executable, "-m", "s2s.cli", "evaluate", "--checkpoint", str(checkpoint),
                   "--data", data, "--split", split, "--beam-sizes", "1,5",
                   "--length-penalty", str(RECIPES[recipe][2]), "--threads", str(threads), "--no-progress",
                   "--output", str(out)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        for r in json.loads(out.read_text())["results"]:
            scores[f"{split} beam{r['beam_size']}"] = {"bleu": r["bleu"], "chrf": r["chrf"]}
    return scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/eng-fra.tsv"), help="pair file")
    p.add_argument("--recipe", default="general", choices=sorted(RECIPES), help="s2s's recipe")
    p.add_argument("--steps", type=int, default=1000, help="training steps per run, both trainers")
    p.add_argument("--onmt-steps", type=int, default=0, help="OpenNMT-py's steps (0: --steps)")
    p.add_argument("--s2s-steps", type=int, default=0, help="s2s's steps (0: --steps)")
    p.add_argument("--runs", default="s2s,opennmt-py,opennmt-py,s2s", help="trainers in the order run")
    p.add_argument("--score", action="store_true", help="score every model on the test split")
    p.add_argument("--threads", type=int, default=2, help="torch threads for both trainers")
    venv = ROOT / "artifacts/opennmt-venv/bin"
    p.add_argument("--onmt-bin", default=str(venv), help="bin/ of the OpenNMT-py venv")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/train_vs_opennmt.json"), help="JSON file")
    args = p.parse_args()
    onmt = Path(args.onmt_bin)
    if not (onmt / "onmt_train").exists():
        raise SystemExit(f"no onmt_train in {onmt}: run benchmarks/setup_opennmt.sh first")
    if not Path(args.data).is_file():
        raise SystemExit(f"data file {args.data} not found")
    order = args.runs.split(",")
    if set(order) - {"s2s", "opennmt-py"}:
        raise SystemExit(f"--runs takes s2s and opennmt-py, got {args.runs!r}")
    steps = {"s2s": args.s2s_steps or args.steps, "opennmt-py": args.onmt_steps or args.steps}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="train-vs-onmt-"))
    refs = write_pieces(args.data, work)
    config = work / "onmt.yaml"
    config.write_text(ONMT_CONFIG.format(work=work, steps=steps["opennmt-py"]))
    subprocess.run([str(onmt / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"],
                   check=True, capture_output=True)  # fmt: skip
    runs: list[dict] = []
    for i, name in enumerate(order):
        log = work / f"{i}-{name}.log"
        if name == "s2s":
            out = work / f"s2s-{i}"
            commands = s2s_commands(args.recipe, args.data, out, steps[name], args.threads)
        else:
            commands = [[str(onmt / "onmt_train"), "-config", str(config)]]
        started = time.strftime("%H:%M:%S", time.gmtime())
        seconds = timed(commands, log, env)
        run = {"trainer": name, "steps": steps[name], "seconds": round(seconds, 1), "started_utc": started}
        if args.score and name == "s2s":
            run["scores"] = score_s2s(args.recipe, args.data, out / "checkpoint.pt", env, args.threads)
        elif args.score:
            model = work / f"onmt-model_step_{steps[name]}.pt"
            run["scores"] = score_onmt(onmt, model.rename(work / f"onmt-{i}.pt"), work, refs, env)
        runs.append(run)
        print(f"run {i} {name:11s} {steps[name]} steps in {seconds:7.1f} s ({log}) {run.get('scores', '')}",
              flush=True)  # fmt: skip
    median = {n: statistics.median([r["seconds"] for r in runs if r["trainer"] == n]) for n in set(order)}
    print("\n| trainer | steps | runs (s) | median s | s per step |")
    print("| --- | --- | --- | --- | --- |")
    for name in sorted(median):
        times = ", ".join(f"{r['seconds']:.1f}" for r in runs if r["trainer"] == name)
        print(f"| {name} | {steps[name]} | {times} | {median[name]:.1f} | {median[name] / steps[name]:.3f} |")
    result = {
        "recipe": args.recipe,
        "s2s_command": s2s_commands(args.recipe, args.data, Path("OUT"), steps["s2s"], args.threads),
        "threads": args.threads,
        "runs": runs,
        "median_seconds": median,
        "conditions": {
            "loadavg_end": os.getloadavg(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    if len(median) == 2:
        result["s2s_time_vs_opennmt"] = round(median["s2s"] / median["opennmt-py"], 3)
        print(f"s2s's median run took {result['s2s_time_vs_opennmt']:.3f} of OpenNMT-py's")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
