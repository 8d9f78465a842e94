"""Soak: minutes of mixed clients; no error, and RSS flat.

    python benchmarks/reliability/soak.py [--minutes 3] [--clients 64] [--name soak] [-- serve options]

Clients mix one-text greedy calls, 8-text beam-5 calls, streams cancelled part-way, calls with
attention, and calls whose deadline is too short (DEADLINE_EXCEEDED is their expected answer).
The server's RSS (its engine processes' included, with `-- --engine process`) is sampled every
10 s; growth is measured from the first sample to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc
from harness import Server, date_texts, retry_delay_s, table, tree_rss_mb, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

# Refusals under load are answers too: RESOURCE_EXHAUSTED with RetryInfo, which the clients honour.
EXPECTED = {"OK", "DEADLINE_EXCEEDED", "CANCELLED_BY_CLIENT", "RESOURCE_EXHAUSTED"}


async def _client(stub, i: int, texts: list[str], codes: dict[str, int], stop: list[bool]) -> None:
    n = i
    while not stop[0]:
        n += 1
        text, kind = texts[n % len(texts)], n % 5
        try:
            if kind == 0:
                await stub.Translate(pb.TranslateRequest(texts=[text]), timeout=30)
            elif kind == 1:
                batch = [texts[(n + k) % len(texts)] for k in range(8)]
                await stub.Translate(
                    pb.TranslateRequest(texts=batch, options=pb.DecodeOptions(beam_size=5)), timeout=30
                )
            elif kind == 2:
                call = stub.TranslateStream(
                    pb.TranslateStreamRequest(text=text, options=pb.DecodeOptions(beam_size=3))
                )
                await call.read()
                call.cancel()  # the client goes away part-way
                codes["CANCELLED_BY_CLIENT"] = codes.get("CANCELLED_BY_CLIENT", 0) + 1
                continue
            elif kind == 3:
                options = pb.DecodeOptions(return_attention=True, replace_unk=True)
                await stub.Translate(
                    pb.TranslateRequest(texts=[text, text[::-1]], options=options), timeout=30
                )
            else:
                await stub.Translate(pb.TranslateRequest(texts=[text] * 4), timeout=0.002)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                await asyncio.sleep(retry_delay_s(exc) or 0.05)
        codes[code] = codes.get(code, 0) + 1


async def main(args: argparse.Namespace) -> None:
    texts = date_texts(256, seed=3)
    codes: dict[str, int] = {}
    samples = []
    with Server(args.server_args) as server:
        stop = [False]
        channels = [grpc.aio.insecure_channel(server.address) for _ in range(8)]
        clients = [
            asyncio.ensure_future(_client(pb_grpc.TranslatorStub(channels[i % 8]), i, texts, codes, stop))
            for i in range(args.clients)
        ]
        started = time.monotonic()
        while time.monotonic() - started < args.minutes * 60:
            await asyncio.sleep(10)
            rss, answers = round(tree_rss_mb(server.pid), 1), sum(codes.values())
            samples.append({"s": round(time.monotonic() - started), "rss_mb": rss, "answers": answers})
            print(samples[-1], flush=True)
        stop[0] = True
        await asyncio.gather(*clients)
        for channel in channels:
            await channel.close()
        log = server.log_text()
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    unexpected = {k: v for k, v in codes.items() if k not in EXPECTED}
    errors = sum(" ERROR " in line or "Traceback" in line for line in log.splitlines())
    result = {"args": vars(args), "codes": codes, "unexpected": unexpected, "samples": samples,
              "rss_growth": last / first - 1, "rss_max_mb": max(s["rss_mb"] for s in samples),
              "error_lines": errors}  # fmt: skip
    print(table(samples, ["s", "rss_mb", "answers"]))
    print({k: v for k, v in result.items() if k not in ("samples", "args")})
    print(f"wrote {write(args.name, result)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--name", default="soak", help="writes benchmarks/results/reliability/NAME.json")
    parser.add_argument("server_args", nargs="*", help="extra `s2s serve` options (after --)")
    asyncio.run(main(parser.parse_args()))
