"""Drain x20: SIGTERM under mixed heavy load; nothing accepted may be lost.

    python benchmarks/reliability/drain.py [--runs 20] [--clients 32] [--load-seconds 3]

Each run starts `s2s serve` (the shipped dates model, default limits and grace period), lets
`--clients` closed-loop clients load it (a quarter send 64-text beam-16 calls, the outside
tester's heavy case; the rest one-text greedy calls and streams), sends SIGTERM, and records
every call's status. A client that gets UNAVAILABLE stops (a real one goes to another replica);
one refused with RESOURCE_EXHAUSTED sleeps the RetryInfo delay. Target (issue 13): 0 CANCELLED
or INTERNAL over 20 drains, exit status 0 each time.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

import grpc
from harness import Server, date_texts, retry_delay_s, table, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

HEAVY = pb.DecodeOptions(beam_size=16)  # with 64 texts: 1,024 decoder rows a call


async def _client(stub, i: int, texts: list[str], codes: dict[str, int], stop: list[bool]) -> None:
    n = i
    while not stop[0]:
        n += 1
        kind = i % 4
        try:
            if kind == 0:
                await stub.Translate(pb.TranslateRequest(texts=texts[:64], options=HEAVY), timeout=60)
            elif kind == 1:
                async for _ in stub.TranslateStream(
                    pb.TranslateStreamRequest(text=texts[n % 64]), timeout=60
                ):
                    pass
            else:
                await stub.Translate(pb.TranslateRequest(texts=[texts[n % 64]]), timeout=60)
            codes["OK"] = codes.get("OK", 0) + 1
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            codes[code] = codes.get(code, 0) + 1
            if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                await asyncio.sleep(retry_delay_s(exc) or 0.05)
            elif exc.code() is grpc.StatusCode.UNAVAILABLE:
                return


async def _run(index: int, args: argparse.Namespace) -> dict:
    texts = date_texts(64, seed=index)
    server = Server(log_path=Path(args.log)).start()
    codes: dict[str, int] = {}
    stop = [False]
    channels = [grpc.aio.insecure_channel(server.address) for _ in range(4)]
    clients = [
        asyncio.ensure_future(_client(pb_grpc.TranslatorStub(channels[i % 4]), i, texts, codes, stop))
        for i in range(args.clients)
    ]
    await asyncio.sleep(args.load_seconds)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(server.wait, 60)
    drain_s = time.monotonic() - signalled
    stop[0] = True
    await asyncio.wait_for(asyncio.gather(*clients), 60)
    for channel in channels:
        await channel.close()
    log = server.log_text()
    server.stop()
    return {
        "run": index + 1,
        "exit": exit_code,
        "drain_s": drain_s,
        **{
            code: codes.get(code, 0)
            for code in ("OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED", "INTERNAL")
        },
        "other": {
            k: v
            for k, v in codes.items()
            if k not in ("OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED", "INTERNAL")
        },
        "error_lines": sum(1 for line in log.splitlines() if " ERROR " in line or "Traceback" in line),
    }


async def main(args: argparse.Namespace) -> None:
    rows = []
    for index in range(args.runs):
        rows.append(await _run(index, args))
        print(rows[-1], flush=True)
    columns = [
        "run",
        "exit",
        "drain_s",
        "OK",
        "UNAVAILABLE",
        "RESOURCE_EXHAUSTED",
        "CANCELLED",
        "INTERNAL",
        "other",
    ]
    print(table(rows, columns))
    totals = {
        k: sum(r[k] for r in rows)
        for k in ("OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED", "INTERNAL")
    }
    totals["nonzero_exits"] = sum(1 for r in rows if r["exit"] != 0)
    print(totals)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "totals": totals}
    print(f"wrote {write('drain', result)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=3.0, help="load before each SIGTERM")
    parser.add_argument("--log", default="/tmp/s2s-drain.log")
    asyncio.run(main(parser.parse_args()))
