"""Overload x10: throughput, accepted latency and refusal latency at capacity and at ten times it.

    python benchmarks/reliability/overload.py [--clients 64] [--factor 10] [--seconds 20] [--rounds 2]

One `s2s serve` of the shipped dates model with its default limits. Closed-loop clients send
one-text greedy Translate calls; a refused client (RESOURCE_EXHAUSTED) sleeps the RetryInfo delay
the server sent, as a well-behaved client does, then tries again. Capacity (`--clients`) and
overload (`--clients x --factor`) alternate for `--rounds` rounds in one run. Targets (issue 13):
overload throughput >= 90% of capacity, refusals p99 < 50 ms, accepted p99 < 2x the capacity p99.
The load generator shares the machine's cores with the server: its own CPU is part of the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc
from harness import Server, Tally, date_texts, retry_delay_s, table, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

CHANNELS = 16  # clients share this many connections, as a fleet of client processes would


async def _phase(address: str, clients: int, seconds: float, warmup_s: float) -> dict:
    texts = date_texts(512, seed=clients)
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    stubs = [pb_grpc.TranslatorStub(c) for c in channels]
    tally, measuring, stop = Tally(), [False], [False]

    async def client(i: int) -> None:
        stub, n = stubs[i % CHANNELS], i
        while not stop[0]:
            n += clients
            started = time.perf_counter()
            try:
                await stub.Translate(pb.TranslateRequest(texts=[texts[n % len(texts)]]), timeout=30)
                code, delay = "OK", 0.0
            except grpc.aio.AioRpcError as exc:
                code, delay = exc.code().name, retry_delay_s(exc) or 0.05
            if measuring[0]:
                tally.add(code, time.perf_counter() - started)
            if delay:
                await asyncio.sleep(delay)

    tasks = [asyncio.ensure_future(client(i)) for i in range(clients)]
    await asyncio.sleep(warmup_s)
    measuring[0] = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring[0], stop[0] = False, True
    elapsed = time.perf_counter() - started
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return {"clients": clients, **tally.summary(elapsed)}


async def main(args: argparse.Namespace) -> None:
    rows = []
    with Server(args.server_args) as server:
        for round_ in range(args.rounds):
            for clients in (args.clients, args.clients * args.factor):
                row = await _phase(server.address, clients, args.seconds, args.warmup)
                rows.append({"round": round_ + 1, **row})
                print(f"round {round_ + 1}, {clients} clients: {row}", flush=True)
        server_log = server.log_text()
    capacity = [r for r in rows if r["clients"] == args.clients]
    overload = [r for r in rows if r["clients"] != args.clients]
    ratios = {
        "throughput_overload_vs_capacity": [
            o["ok_per_s"] / c["ok_per_s"] for c, o in zip(capacity, overload, strict=True)
        ],
        "ok_p99_overload_vs_capacity": [
            o["ok_p99_ms"] / c["ok_p99_ms"] for c, o in zip(capacity, overload, strict=True)
        ],
        "refusal_p99_ms": [o["refusal_p99_ms"] for o in overload],
    }
    print(table(rows, ["round", "clients", "ok_per_s", "ok_p50_ms", "ok_p99_ms", "refusal_p99_ms", "codes"]))
    print({k: [round(v, 3) if v is not None else None for v in vs] for k, vs in ratios.items()})
    errors_logged = sum(1 for line in server_log.splitlines() if " ERROR " in line or "Traceback" in line)
    path = write(
        args.name, {"args": vars(args), "rows": rows, "ratios": ratios, "server_error_lines": errors_logged}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients at capacity")
    parser.add_argument("--factor", type=int, default=10, help="overload = clients x factor")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each phase")
    parser.add_argument("--rounds", type=int, default=2, help="capacity/overload pairs, alternating")
    parser.add_argument("--name", default="overload", help="writes benchmarks/results/reliability/NAME.json")
    parser.add_argument("server_args", nargs="*", help="extra `s2s serve` options (after --)")
    asyncio.run(main(parser.parse_args()))
