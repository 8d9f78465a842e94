"""Accuracy and speed of a bundle's int8 graphs against its fp32 graphs, on a held-out split.

    .venv/bin/python benchmarks/quant_accuracy.py [--bundle s2s/bundles/dates/1] [--data dates]
        [--limit 2000] [--beams 1,5] [--threads 1] [--out benchmarks/results/quant_accuracy.json]

--data: "dates" (the 2,000 held-out dates) or a pair file (its test split, as `s2s evaluate` cuts
it); default: the data the bundle's model was trained on.

Decodes each held-out input with the numpy + ONNX Runtime decoder (engine/decode.py, one
request at a time, as the baseline server loop), fp32 and int8 alternating per input so machine
noise hits both alike. Reports exact match, BLEU and chrF (sacrebleu), how often int8's output
differs from fp32's, and the median time per sentence. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sacrebleu

from engine.config import DecodeConfig
from engine.decode import Decoder
from engine.sessions import RunnerConfig
from s2s.bundle import DEFAULT_BUNDLE_DIR, load_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE_DIR))
    parser.add_argument("--data", default="", help="'dates' or a pair file (default: the bundle's)")
    parser.add_argument("--limit", type=int, default=2000, help="test pairs to decode at most")
    parser.add_argument("--beams", default="1,5")
    # One thread: a small model's step is too short to split, and spinning threads suffer most on a
    # shared machine.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/quant_accuracy.json")
    args = parser.parse_args()

    from training.evaluate import split_pairs_of

    bundle = load_bundle(args.bundle)
    data = args.data or bundle.training.get("data") or "dates"
    pairs = [(p.src, p.tgt.strip()) for p in split_pairs_of(data, "test")[: args.limit]]
    decoders = {
        p: Decoder.open(bundle, RunnerConfig(intra_op_threads=args.threads, precision=p))
        for p in ("fp32", "int8")
    }
    results = []
    for beam in [int(b) for b in args.beams.split(",")]:
        config = DecodeConfig(beam_size=beam)
        outputs = {p: [] for p in decoders}
        seconds = {p: [] for p in decoders}
        for src, _ in pairs:
            for precision, decoder in decoders.items():
                start = time.perf_counter()
                outputs[precision].append(decoder.translate(src, config)[0][0])
                seconds[precision].append(time.perf_counter() - start)
        refs = [ref for _, ref in pairs]
        for precision in decoders:
            hyps = outputs[precision]
            row = {
                "precision": precision,
                "beam_size": beam,
                "sentences": len(pairs),
                "exact_match": 100.0 * float(np.mean([h == r for h, r in zip(hyps, refs, strict=True)])),
                "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
                "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
                "differs_from_fp32": 100.0
                * float(np.mean([h != f for h, f in zip(hyps, outputs["fp32"], strict=True)])),
                "ms_per_sentence_p50": 1e3 * float(np.median(seconds[precision])),
            }
            results.append(row)
            print_row(row, header=len(results) == 1)
    meta = {
        "bundle": f"{bundle.name}/{bundle.version}",
        "data": data,
        "model": vars(bundle.model),
        "threads": args.threads,
        "onnxruntime": ort.__version__,
        "load_average": os.getloadavg(),
        "decoder": "engine.decode.Decoder, one request at a time, saved optimised graphs",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nthreads={args.threads}, CPU EP; load average {meta['load_average'][0]:.1f}; JSON: {args.out}")


def print_row(r: dict, header: bool) -> None:
    if header:
        print(f"{'prec':<5} {'beam':>4} {'exact':>7} {'BLEU':>6} {'chrF':>6} {'≠fp32':>6} {'ms/sent':>8}")
    print(
        f"{r['precision']:<5} {r['beam_size']:>4} {r['exact_match']:>6.2f}% {r['bleu']:>6.2f} "
        f"{r['chrf']:>6.2f} {r['differs_from_fp32']:>5.1f}% {r['ms_per_sentence_p50']:>8.3f}"
    )


if __name__ == "__main__":
    main()
