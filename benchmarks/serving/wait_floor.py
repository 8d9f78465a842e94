"""What a gRPC round trip costs around a handler that waits, at concurrency 1.

The concurrency-1 target of issue 14 adds the floor's p50 (a server that answers at once) to the
per-request decode loop's. This measures whether that sum is what gRPC costs when the handler is
not instant: the floor server (benchmarks/serving/baseline_servers.py `--kind floor`) answers after
`--wait-ms` of asyncio.sleep, one client sends one call at a time, and the table gives each wait's
p50 and what it adds over the wait itself. Waits alternate, rounds reverse the order. Beside it,
the same waits on a plain TCP socket (a process that sleeps, then answers two bytes): what the
machine itself adds to a call that waits, without gRPC. And no socket at all: a fixed piece of
Python work (JSON, a regex, a division; ~0.1 ms) timed right after the process slept the wait,
against the same work back to back: what a pause costs the code that runs after it.

    .venv/bin/python -m benchmarks.serving.wait_floor --waits 0,0.5,1,2,4,8 --rounds 2 \
        --out benchmarks/results/serving/wait-floor.json
"""

from __future__ import annotations

import argparse
import asyncio
import decimal
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc

from benchmarks.serving.load import closed_loop
from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


async def _p50_ms(port: int, calls: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.TranslatorStub(channel)

        async def call(text: str) -> tuple[int, int, None]:
            await stub.Translate(pb.TranslateRequest(texts=[text]), timeout=30)
            return 0, 0, None

        await stub.Translate(pb.TranslateRequest(texts=["x"]), timeout=30, wait_for_ready=True)
        await closed_loop(call, ["x"], 1, None, calls // 5)  # warm-up
        outcomes, _ = await closed_loop(call, ["x"], 1, None, calls)
    if any(o.code != "OK" for o in outcomes):
        raise RuntimeError(f"floor calls failed: {sorted({o.code for o in outcomes})}")
    return statistics.median(o.latency_s for o in outcomes) * 1000


def _tcp_answer_after(sock: socket.socket) -> None:
    connection, _ = sock.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while message := connection.recv(64):
        time.sleep(float(message.decode()) / 1000)
        connection.sendall(b"ok")


def measure_tcp(wait_ms: float, calls: int) -> float:
    """p50 ms of one client's calls to a process that sleeps `wait_ms`, then answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = multiprocessing.get_context("fork").Process(target=_tcp_answer_after, args=(listener,))
    server.start()
    try:
        with socket.create_connection(listener.getsockname()) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            latencies = []
            for _ in range(calls // 5 + calls):  # the first fifth warms up
                started = time.perf_counter()
                client.sendall(str(wait_ms).encode())
                client.recv(64)
                latencies.append(time.perf_counter() - started)
        return statistics.median(latencies[calls // 5 :]) * 1000
    finally:
        server.join(timeout=30)
        listener.close()


def _fixed_work(payload: dict) -> None:
    json.loads(json.dumps(payload))
    re.sub(r"\d+", "n", "abc 123 def 456 " * 5)
    decimal.Decimal(1) / decimal.Decimal(7)


def measure_after_pause(wait_ms: float, calls: int) -> float:
    """p50 us of `_fixed_work` run right after sleeping `wait_ms` (0: back to back)."""
    payload = {"rows": [{"x": i, "y": str(i), "z": [1.5, 2.5]} for i in range(30)]}
    latencies = []
    for _ in range(calls // 5 + calls):  # the first fifth warms up
        if wait_ms:
            time.sleep(wait_ms / 1000)
        started = time.perf_counter()
        _fixed_work(payload)
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies[calls // 5 :]) * 1e6


def measure(wait_ms: float, port: int, calls: int) -> float:
    command = [sys.executable, "-m", "benchmarks.serving.baseline_servers", "--kind", "floor",
               "--port", str(port), "--wait-ms", str(wait_ms)]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_p50_ms(port, calls))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", default="0,0.5,1,2,4,8", help="handler waits, ms, comma-separated")
    parser.add_argument("--calls", type=int, default=600, help="calls per wait and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=50890)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serving/wait-floor.json")
    args = parser.parse_args()
    waits = [float(w) for w in args.waits.split(",")]
    runs = []
    for i in range(args.rounds):
        for wait in waits if i % 2 == 0 else waits[::-1]:
            p50, tcp = measure(wait, args.port, args.calls), measure_tcp(wait, args.calls)
            work = measure_after_pause(wait, args.calls)
            runs.append({"round": i + 1, "wait_ms": wait, "p50_ms": round(p50, 3),
                         "tcp_p50_ms": round(tcp, 3), "work_after_pause_us": round(work, 1)})  # fmt: skip
            print(runs[-1], flush=True)
    print("| handler waits (ms) | gRPC p50 (ms) | p50 − wait (ms) | TCP p50 (ms) | TCP p50 − wait (ms) "
          "| fixed work after the pause (us) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    summary = []
    for wait in waits:
        p50 = statistics.median(r["p50_ms"] for r in runs if r["wait_ms"] == wait)
        tcp = statistics.median(r["tcp_p50_ms"] for r in runs if r["wait_ms"] == wait)
        work = statistics.median(r["work_after_pause_us"] for r in runs if r["wait_ms"] == wait)
        summary.append({"wait_ms": wait, "p50_ms": round(p50, 3), "over_wait_ms": round(p50 - wait, 3),
                        "tcp_p50_ms": round(tcp, 3), "tcp_over_wait_ms": round(tcp - wait, 3),
                        "work_after_pause_us": round(work, 1)})  # fmt: skip
        print(f"| {wait:g} | {p50:.2f} | {p50 - wait:.2f} | {tcp:.2f} | {tcp - wait:.2f} | {work:.0f} |")
    conditions = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cores": os.cpu_count(),
                  "load_average": os.getloadavg()[0], "calls": args.calls, "rounds": args.rounds}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"conditions": conditions, "summary": summary, "runs": runs}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
