"""Offline translation speed against OpenNMT-py 3.5.1's `onmt_translate`, side by side: the same
test split, models of the same size, alternating runs in one invocation, each timed as a whole
process (start-up and model loading included for both).

    benchmarks/setup_opennmt.sh         # once: an OpenNMT-py venv in artifacts/opennmt-venv
    .venv/bin/python benchmarks/offline_vs_opennmt.py --onmt-model ONMT.pt --bundle BUNDLE_DIR \
        --beam 1 --batch 64 --runs 3    # and --beam 5 --batch 32

OpenNMT-py reads the test sources as s2s's word tokeniser cuts them (benchmarks/train_vs_opennmt.py
writes the same files); `s2s translate --input` reads the raw lines and decodes them with the
in-process continuous-batching scheduler, `--in-flight` = the batch size. Words/s counts the words
of the detokenised outputs over the process's wall time. Issue 14's target: s2s >= 3x.
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

from benchmarks.train_vs_opennmt import write_pieces  # noqa: E402
from training.data import read_pairs, split_pairs  # noqa: E402


def _words(path: Path) -> int:
    return sum(len(line.split()) for line in path.read_text(encoding="utf-8").splitlines())


def run_onmt(onmt: Path, model: Path, work: Path, beam: int, batch: int, threads: int) -> dict:
    out = work / f"onmt.beam{beam}.txt"
    command = [str(onmt / "onmt_translate"), "-model", str(model), "-src", str(work / "test.src"),
               "-output", str(out), "-beam_size", str(beam), "-batch_size", str(batch),
               "-gpu", "-1"]  # fmt: skip
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 3), "words": _words(out), "words_per_s": round(_words(out) / wall, 1)}


def run_s2s(bundle: Path, work: Path, beam: int, batch: int, threads: int) -> dict:
    out = work / f"s2s.beam{beam}.txt"
    command = [sys.executable, "-m", "s2s.cli", "translate", "--input", str(work / "test.raw"),
               "--output", str(out), "--bundle", str(bundle), "--beam", str(beam),
               "--in-flight", str(batch), "--threads", str(threads)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 3), "words": _words(out), "words_per_s": round(_words(out) / wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onmt-model", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/eng-fra.tsv"))
    parser.add_argument("--onmt-venv", type=Path, default=ROOT / "artifacts/opennmt-venv")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="onmt -batch_size; s2s --in-flight")
    parser.add_argument("--threads", type=int, default=2, help="both: OMP_NUM_THREADS / --threads")
    parser.add_argument("--runs", type=int, default=3, help="alternating pairs")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default under benchmarks/results/)")
    args = parser.parse_args()
    out = args.out or ROOT / f"benchmarks/results/offline_vs_opennmt_beam{args.beam}.json"
    with tempfile.TemporaryDirectory(prefix="offline-vs-onmt-") as tmp:
        work = Path(tmp)
        write_pieces(args.data, work)
        raw = [p.src for p in split_pairs(read_pairs(args.data)).test]
        (work / "test.raw").write_text("\n".join(raw) + "\n", encoding="utf-8")
        runs = []
        for i in range(args.runs):
            order = ("opennmt-py", "s2s") if i % 2 == 0 else ("s2s", "opennmt-py")
            for name in order:
                if name == "s2s":
                    result = run_s2s(args.bundle, work, args.beam, args.batch, args.threads)
                else:
                    result = run_onmt(args.onmt_venv / "bin", args.onmt_model, work, args.beam, args.batch,
                                      args.threads)  # fmt: skip
                runs.append({"run": i + 1, "system": name, **result})
                print(runs[-1], flush=True)
    median = {
        name: statistics.median(r["words_per_s"] for r in runs if r["system"] == name)
        for name in ("opennmt-py", "s2s")
    }
    ratio = round(median["s2s"] / median["opennmt-py"], 2)
    print("| system | median words/s | runs (wall s) |\n| --- | --- | --- |")
    for name in ("opennmt-py", "s2s"):
        walls = ", ".join(str(r["wall_s"]) for r in runs if r["system"] == name)
        print(f"| {name} | {median[name]:,.0f} | {walls} |")
    print(f"s2s / OpenNMT-py words/s: {ratio}x (target >= 3x)")
    conditions = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        "beam": args.beam, "batch": args.batch, "threads": args.threads, "sentences": len(raw),
        "onmt_model": str(args.onmt_model), "bundle": str(args.bundle),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"conditions": conditions, "runs": runs, "median_words_per_s": median,
                               "ratio": ratio}, indent=2) + "\n")  # fmt: skip
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
