"""Run variants side by side: for each load level, rounds of every variant in alternating order,
on the same inputs; print a table, write JSON, optionally plot the concurrency sweep."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort

from benchmarks.serving.load import closed_loop, open_loop, summarize
from benchmarks.serving.ort_cpu import proc_cpu_s
from benchmarks.serving.variants import DecodeSetup

BASELINE = "ort-per-request"  # ratios are against this, and against torch-eager when run
SERVED_BASELINE = "server-per-request"  # (b) behind the same gRPC path as (c): the fair one


@dataclass(frozen=True)
class BenchPlan:
    levels: tuple[float, ...]  # concurrencies (closed loop) or rates per second (open loop)
    open_loop: bool = False
    duration_s: float | None = 10.0  # per variant and level; None = use count
    count: int | None = None  # requests per variant and level
    rounds: int = 2  # alternating rounds: A B C, then C B A, ...
    warmup_requests: int = 8  # per variant before each measurement, not timed


def _process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of this process (pid None) or of `pid` and the processes it
    started (the decode engines of `s2s serve --engine process`), from Linux /proc."""
    if pid is None:
        return time.process_time()  # all threads; finer than /proc's 10 ms ticks
    total = proc_cpu_s(f"/proc/{pid}/stat")
    for child in _children(pid):
        try:
            total += _process_cpu_s(child)
        except OSError:  # it ended meanwhile
            pass
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                found.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return found


def cpu_seconds(variant) -> tuple[float, float] | None:
    """CPU seconds used so far by the load generator and by the variant's server process (0 for
    in-process variants): the cost of its requests, whichever process pays it. None where it
    cannot be read."""
    in_process = not hasattr(variant, "server_pid")
    if not in_process and variant.server_pid is None:
        return None  # a server we did not start (--server): its CPU is not ours to read
    try:
        return _process_cpu_s(None), (0.0 if in_process else _process_cpu_s(variant.server_pid))
    except (OSError, ValueError, IndexError):
        return None


def _cpu_fields(before, after, ok: int, wall_s: float) -> dict:
    if before is None or after is None or not ok:
        return {"cpu_ms_per_request": None, "server_cpu_ms_per_request": None, "cores_busy": None}
    own, server = (a - b for a, b in zip(after, before, strict=True))
    return {
        "cpu_ms_per_request": round((own + server) / ok * 1000, 3),
        "server_cpu_ms_per_request": round(server / ok * 1000, 3),
        "cores_busy": round((own + server) / wall_s, 2),
    }


async def run_plan(variants: list, texts: list[str], plan: BenchPlan) -> list[dict]:
    runs = []
    for level in plan.levels:
        for round_index in range(plan.rounds):
            order = variants if round_index % 2 == 0 else list(reversed(variants))
            for variant in order:
                warm = max(plan.warmup_requests, int(level))
                await closed_loop(variant.call, texts, min(int(level), warm), None, warm)
                cpu_before = cpu_seconds(variant)
                ort_before = variant.ort_cpu_s() if hasattr(variant, "ort_cpu_s") else None
                if plan.open_loop:
                    outcomes, wall = await open_loop(variant.call, texts, level, plan.duration_s, plan.count)
                else:
                    outcomes, wall = await closed_loop(
                        variant.call, texts, int(level), plan.duration_s, plan.count
                    )
                cpu_after = cpu_seconds(variant)
                row = {
                    "variant": variant.name,
                    "level": level,
                    "round": round_index,
                    **summarize(outcomes, wall),
                }
                row.update(_cpu_fields(cpu_before, cpu_after, row["ok"], wall))
                if ort_before is not None and row["ok"]:  # the model's own share (sched only)
                    row["ort_cpu_ms_per_request"] = round(
                        (variant.ort_cpu_s() - ort_before) / row["ok"] * 1000, 3
                    )
                runs.append(row)
                mode = "rate" if plan.open_loop else "conc"
                print(
                    f"  {variant.name:<22} {mode} {level:>6g} round {round_index}: "
                    f"{row['tokens_per_s']:>9.1f} tok/s  p99 {row['latency_ms']['p99']} ms  "
                    f"errors {row['errors']}",
                    flush=True,
                )
    return runs


def combine(runs: list[dict]) -> list[dict]:
    """Median over rounds per (variant, level), plus ratios to the baselines at the same level."""
    keys = sorted({(r["variant"], r["level"]) for r in runs}, key=lambda k: (k[1], k[0]))
    summary = []
    for variant, level in keys:
        mine = [r for r in runs if r["variant"] == variant and r["level"] == level]

        def median(get, rows=mine):
            values = [v for v in (get(r) for r in rows) if v is not None]
            return round(statistics.median(values), 2) if values else None

        summary.append(
            {
                "variant": variant,
                "level": level,
                "rounds": len(mine),
                "requests_per_s": median(lambda r: r["requests_per_s"]),
                "tokens_per_s": median(lambda r: r["tokens_per_s"]),
                "words_per_s": median(lambda r: r["words_per_s"]),
                "p50_ms": median(lambda r: r["latency_ms"]["p50"]),
                "p95_ms": median(lambda r: r["latency_ms"]["p95"]),
                "p99_ms": median(lambda r: r["latency_ms"]["p99"]),
                "ttft_p50_ms": median(lambda r: (r["ttft_ms"] or {}).get("p50")),
                "errors": sum(sum(r["errors"].values()) for r in mine),
                # CPU of the load generator + the server process, per answered request
                "cpu_ms_per_request": median(lambda r: r.get("cpu_ms_per_request")),
                "server_cpu_ms_per_request": median(lambda r: r.get("server_cpu_ms_per_request")),
                "ort_cpu_ms_per_request": median(lambda r: r.get("ort_cpu_ms_per_request")),
                "cores_busy": median(lambda r: r.get("cores_busy")),
            }
        )
    for row in summary:
        for base in (BASELINE, SERVED_BASELINE, "torch-eager"):
            ref = next((s for s in summary if s["variant"] == base and s["level"] == row["level"]), None)
            if ref and ref["tokens_per_s"]:
                row[f"tokens_x_{base}"] = round(row["tokens_per_s"] / ref["tokens_per_s"], 2)
                for q in ("p50", "p99"):
                    if ref[f"{q}_ms"] and row[f"{q}_ms"]:
                        row[f"{q}_x_{base}"] = round(row[f"{q}_ms"] / ref[f"{q}_ms"], 2)
    return summary


def format_table(summary: list[dict], open_loop: bool) -> str:
    head = (
        f"| {'rate/s' if open_loop else 'concurrency'} | variant | req/s | tokens/s | words/s | p50 ms | "
        "p95 ms | p99 ms | TTFT p50 ms | errors | tokens/s ÷ (b) | p99 ÷ (b) | tokens/s ÷ (b served) | "
        "p50 ÷ (b served) | p99 ÷ (b served) | tokens/s ÷ (a) | CPU ms/req | cores |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in summary:
        lines.append(
            f"| {r['level']:g} | {r['variant']} | {r['requests_per_s']} | {r['tokens_per_s']} | "
            f"{r['words_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['ttft_p50_ms'] if r['ttft_p50_ms'] is not None else '-'} | {r['errors']} | "
            f"{r.get('tokens_x_' + BASELINE, '-')} | {r.get('p99_x_' + BASELINE, '-')} | "
            f"{r.get('tokens_x_' + SERVED_BASELINE, '-')} | {r.get('p50_x_' + SERVED_BASELINE, '-')} | "
            f"{r.get('p99_x_' + SERVED_BASELINE, '-')} | {r.get('tokens_x_torch-eager', '-')} | "
            f"{_or_dash(r.get('cpu_ms_per_request'))} | {_or_dash(r.get('cores_busy'))} |"
        )
    return "\n".join(lines)


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def conditions(bundle, setup: DecodeSetup, inputs: str, n_inputs: int, plan: BenchPlan) -> dict:
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        "onnxruntime": ort.__version__,
        "provider": "cpu",
        "bundle": f"{bundle.name}/{bundle.version}",
        "model": asdict(bundle.model),
        "inputs": inputs,
        "n_inputs": n_inputs,
        "setup": asdict(setup),
        "plan": asdict(plan),
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def plot_sweep(summary: list[dict], path: Path, title: str) -> None:
    """Output tokens/s and p99 latency against concurrency, one line per variant (log2 x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for variant in sorted({r["variant"] for r in summary}):
        rows = sorted((r for r in summary if r["variant"] == variant), key=lambda r: r["level"])
        levels = [r["level"] for r in rows]
        left.plot(levels, [r["tokens_per_s"] for r in rows], marker="o", label=variant)
        right.plot(levels, [r["p99_ms"] for r in rows], marker="o", label=variant)
    for axis, label in ((left, "output tokens/s"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrency (closed loop)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
