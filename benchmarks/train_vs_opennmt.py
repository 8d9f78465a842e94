"""Training speed against OpenNMT-py 3.5.1, side by side on this machine: the same model, data and
batch, run after run, alternating.

    benchmarks/setup_opennmt.sh                  # once: an OpenNMT-py venv in artifacts/opennmt-venv
    .venv/bin/python benchmarks/train_vs_opennmt.py [--steps 1000] [--rounds 2] [--threads 2]
        [--data ../shared/data/eng-fra.tsv] [--out benchmarks/results/train_vs_opennmt.json]

Both trainers get eng-fra's training split (line i with i % 20 not in {7, 13}) cut into the same
word pieces by s2s's word tokeniser, so both build the same vocabularies (3,496 / 6,346 with the
special tokens), and the reference's model: bidirectional LSTM encoder 2 x 128, 2-layer LSTM
decoder 256 with input feeding, embeddings 128, `general` attention, dropout 0.3, 64 sentences a
batch. Each run trains `--steps` steps from scratch in a process of its own; what is timed is the
process's wall time, start-up and data loading included for both. s2s also validates once an epoch
(903 sentences) and writes a checkpoint each time; OpenNMT-py validates and saves nothing before
the end (its `valid_steps` is set past the run), so the comparison leans towards OpenNMT-py.
Optimisers are each tool's usual one (s2s: Adam, OpenNMT-py's default: SGD); the step's cost is the
model's. Prints a table and writes JSON with every run's time and the median ratio.
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


def s2s_command(data: str, out: Path, steps: int, threads: int) -> list[str]:
    """The docs/training.md recipe at the reference's size, stopped after `steps`."""
    return [
        sys.executable, "-m", "training.train", "--data", data, "--out", str(out),
        "--src-kind", "word", "--tgt-kind", "word", "--emb-dim", "128", "--hidden", "256",
        "--layers", "2", "--bidirectional", "--dropout", "0.3", "--score", "general",
        "--score-scale", "0.0625", "--batch-size", "64", "--lr", "0.002", "--lr-schedule", "cosine",
        "--warmup-steps", "100", "--max-steps", str(steps), "--epochs", "100", "--patience", "100",
        "--label-smoothing", "0.1", "--threads", str(threads), "--no-progress",
    ]  # fmt: skip


def write_pieces(data: str, work: Path) -> None:
    """The training and validation splits as space-separated word pieces, one sentence a line."""
    splits = split_pairs(read_pairs(data))
    words = Tokenizer("word", [*SPECIAL_TOKENS, "."])  # only split() is used: no vocabulary needed
    for name, pairs in (("train", splits.train), ("valid", splits.valid)):
        for side in ("src", "tgt"):
            lines = (" ".join(words.split(words.normalize(getattr(p, side)))) for p in pairs)
            (work / f"{name}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(command: list[str], log: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{command[0]} failed (exit {done.returncode}); see {log}")
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/eng-fra.tsv"), help="pair file")
    p.add_argument("--steps", type=int, default=1000, help="training steps per run")
    p.add_argument("--rounds", type=int, default=2, help="runs of each trainer, alternating")
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
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    work = Path(tempfile.mkdtemp(prefix="train-vs-onmt-"))
    write_pieces(args.data, work)
    config = work / "onmt.yaml"
    config.write_text(ONMT_CONFIG.format(work=work, steps=args.steps))
    subprocess.run([str(onmt / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"],
                   check=True, capture_output=True)  # fmt: skip
    runs: dict[str, list[float]] = {"s2s": [], "opennmt-py": []}
    for round_ in range(args.rounds):
        order = ["s2s", "opennmt-py"] if round_ % 2 == 0 else ["opennmt-py", "s2s"]
        for name in order:
            log = work / f"{name}-{round_}.log"
            if name == "s2s":
                command = s2s_command(args.data, work / f"s2s-{round_}", args.steps, args.threads)
            else:
                command = [str(onmt / "onmt_train"), "-config", str(config)]
            seconds = timed(command, log, env)
            runs[name].append(round(seconds, 2))
            print(f"round {round_} {name:11s} {args.steps} steps in {seconds:7.1f} s ({log})", flush=True)
    s2s, ref = statistics.median(runs["s2s"]), statistics.median(runs["opennmt-py"])
    print(f"\n| trainer | runs (s, {args.steps} steps each) | median s | s per step | speed vs OpenNMT-py |")
    print("| --- | --- | --- | --- | --- |")
    for name, median in (("s2s", s2s), ("opennmt-py", ref)):
        times = ", ".join(f"{t:.1f}" for t in runs[name])
        print(f"| {name} | {times} | {median:.1f} | {median / args.steps:.3f} | {ref / median:.2f}x |")
    result = {
        "steps": args.steps,
        "threads": args.threads,
        "runs_seconds": runs,
        "median_seconds": {"s2s": s2s, "opennmt-py": ref},
        "s2s_speed_vs_opennmt": round(ref / s2s, 3),
        "conditions": {
            "loadavg_end": os.getloadavg(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
