"""Fuzz at scale: random requests, random bytes and broken HTTP/2 calls against a real server.

    python benchmarks/reliability/fuzz.py [--requests 10000] [--messages 2000] [--broken 500]

Every call must get a deliberate status (OK, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED):
never UNKNOWN, INTERNAL or no answer; the server's RSS may grow by less than 5% from after a
warm-up to the end. tests/e2e/test_fuzz.py is the bounded version that runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import grpc
from harness import ROOT, Server, rss_mb, table, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from raw_h2 import RawConnection, grpc_frame  # noqa: E402 - the tests' raw HTTP/2 client

DELIBERATE = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
METHODS = (
    "/s2s.v1.Translator/Translate",
    "/s2s.v1.Translator/TranslateStream",
    "/s2s.v1.Translator/GetModelInfo",
)
ALPHABET = "0123456789 /.-,:abcdefghijklmnopqrstuvwxyzÄéñ月日年🙂\x00\t\n\u200b\ud7ff"


def _text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return f"{rng.randint(1, 28)} {rng.choice(['May', 'juin', 'März', 'Oct.'])} {rng.randint(1000, 2999)}"
    length = rng.choice([0, 1, 5, 40, 200, 2001, 3000])
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def _options(rng: random.Random) -> pb.DecodeOptions:
    fields = {}
    ints = [0, 1, 2, 5, 16, 17, -1, 2**31 - 1, -(2**31)]
    for name in ("beam_size", "n_best", "max_length"):
        if rng.random() < 0.5:
            fields[name] = rng.choice(ints)
    for name in ("max_length_ratio", "length_penalty"):
        if rng.random() < 0.4:
            fields[name] = rng.choice([0.0, 0.6, 1.5, 10.0, 11.0, -1.0, float("nan"), float("inf"), 1e30])
    return pb.DecodeOptions(**fields, return_attention=rng.random() < 0.3, replace_unk=rng.random() < 0.2)


def _request(rng: random.Random) -> pb.TranslateRequest:
    models = [pb.ModelSpec(), pb.ModelSpec(name="dates"), pb.ModelSpec(name="x" * rng.randint(1, 5000)),
              pb.ModelSpec(name="dates", version=rng.choice(["1", "2", ""]))]  # fmt: skip
    model = rng.choice(models)
    count = rng.choice([0, 1, 1, 1, 2, 8, 64, 65, 300])
    return pb.TranslateRequest(texts=[_text(rng) for _ in range(count)], options=_options(rng), model=model)


async def _call(call) -> str:
    """Await a unary call (or coroutine) or read a stream to its end; its status code's name."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    seen: list[tuple[str, str]] = []  # the first calls that got an undeliberate status
    done, samples = [0], []  # calls answered; (calls, server RSS MB) every 1,000 calls
    codes: dict[str, dict[str, int]] = {"warm-up": {}, "requests": {}, "messages": {}, "broken": {}}
    with Server(["--threads", "2"], log_path=Path("/tmp/s2s-fuzz.log")) as server:
        channel = grpc.aio.insecure_channel(
            server.address, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        stub = pb_grpc.TranslatorStub(channel)
        gate = asyncio.Semaphore(16)

        async def one(kind: str, make) -> None:
            """make() starts the call: only 16 are in flight at once (a call starts when made)."""
            async with gate:
                code = await _call(make())
            codes[kind][code] = codes[kind].get(code, 0) + 1
            done[0] += 1
            if done[0] % 1000 == 0:
                samples.append((done[0], round(rss_mb(server.pid), 1)))
            if code not in DELIBERATE and len(seen) < 20:
                seen.append((kind, code))

        # Warm-up before the first RSS reading: the allocator arenas grow to what this traffic
        # needs (batch sizes, attention) in the first thousand calls or so.
        warm = [_request(rng) for _ in range(args.warmup)]
        await asyncio.gather(*(one("warm-up", lambda r=r: stub.Translate(r, timeout=30)) for r in warm))
        rss_start = rss_mb(server.pid)
        started = time.perf_counter()
        jobs = []
        for i in range(args.requests):
            request = _request(rng)
            if i % 4 == 0 and request.texts:
                stream = pb.TranslateStreamRequest(
                    text=request.texts[0], options=request.options, model=request.model
                )
                jobs.append(one("requests", lambda r=stream: stub.TranslateStream(r, timeout=30)))
            else:
                jobs.append(one("requests", lambda r=request: stub.Translate(r, timeout=30)))
        for _ in range(args.messages):
            method, body = rng.choice(METHODS), rng.randbytes(rng.choice([1, 3, 10, 100, 1000, 30000]))
            call = channel.unary_stream(method) if method.endswith("Stream") else channel.unary_unary(method)
            jobs.append(one("messages", lambda c=call, b=body: _unary_or_stream(c, b)))
        await asyncio.gather(*jobs)
        broken = await asyncio.to_thread(_broken_calls, server.port, args.broken, rng)
        for status in broken:
            name = _code_name(status)
            codes["broken"][name] = codes["broken"].get(name, 0) + 1
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)
        rss_end = rss_mb(server.pid)
        await channel.close()
        log = server.log_text()
    undeliberate = {k: {c: n for c, n in v.items() if c not in DELIBERATE} for k, v in codes.items()}
    rows = [{"kind": k, "calls": sum(v.values()), "codes": v} for k, v in codes.items()]
    result = {"args": vars(args), "rows": rows, "undeliberate": undeliberate, "rss_start_mb": rss_start,
              "rss_end_mb": rss_end, "rss_growth": rss_end / rss_start - 1, "seconds": elapsed,
              "tracebacks_logged": log.count("Traceback"), "rss_samples": samples}  # fmt: skip
    print(table(rows, ["kind", "calls", "codes"]))
    print({k: v for k, v in result.items() if k not in ("rows", "args")}, "first undeliberate:", seen[:5])
    print(f"wrote {write('fuzz', result)}")


async def _unary_or_stream(call, body: bytes):
    result = call(body, timeout=30)
    if hasattr(result, "__aiter__"):
        async for _ in result:
            pass
        return None
    return await result


def _code_name(status: int | None) -> str:
    if status is None:
        return "NO ANSWER"
    return next((c.name for c in grpc.StatusCode if c.value[0] == status), f"status {status}")


def _broken_calls(port: int, count: int, rng: random.Random) -> list[int | None]:
    """Calls no gRPC client sends: no DATA, short or lying length prefixes, junk; 50 per connection."""
    good = grpc_frame(pb.TranslateRequest(texts=["1 May 2001"]).SerializeToString())
    bodies = [
        b"",
        b"\x00",
        b"\x00\x00\x00",
        good[:-3],
        good[:4],
        b"\x01" + good[1:],
        b"\x00\xff\xff\xff\xff" + good,
    ]
    statuses: list[int | None] = []
    for start in range(0, count, 50):
        connection = RawConnection(port)
        try:
            streams = {
                connection.start(rng.choice(METHODS), rng.choice(bodies)): None
                for _ in range(min(50, count - start))
            }
            answers = connection.answers(set(streams), 30)
        finally:
            connection.close()
        statuses += [answers[s].status if s in answers else None for s in streams]
    return statuses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--broken", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=1_000, help="random requests before the RSS baseline")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
