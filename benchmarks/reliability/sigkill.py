"""SIGKILL mid-load: clients see UNAVAILABLE and never a wrong answer; a restart serves at once.

    python benchmarks/reliability/sigkill.py [--runs 5] [--clients 32] [--load-seconds 2]

The answers of the shipped dates model to a fixed set of texts are taken first from a quiet
server; then each run loads a fresh server with those texts (greedy, beam 5 and streams),
SIGKILLs it, records what every call got, checks every OK answer against the reference, and
times a restart until health says SERVING.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

import grpc
from harness import Server, date_texts, retry_delay_s, table, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

BEAM = pb.DecodeOptions(beam_size=5)


async def _reference(address: str, texts: list[str]) -> dict[tuple[str, int], str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        greedy = await stub.Translate(pb.TranslateRequest(texts=texts), timeout=60)
        beam = await stub.Translate(pb.TranslateRequest(texts=texts, options=BEAM), timeout=60)
    answers = {(t, 1): r.hypotheses[0].text for t, r in zip(texts, greedy.results, strict=True)}
    answers.update({(t, 5): r.hypotheses[0].text for t, r in zip(texts, beam.results, strict=True)})
    return answers


async def _client(stub, i: int, texts: list[str], expected: dict, tally: dict, stop: list[bool]) -> None:
    n = i
    while not stop[0]:
        n += 1
        text, beam = texts[n % len(texts)], 5 if i % 3 == 1 else 1
        try:
            if i % 3 == 2:
                messages = [
                    m async for m in stub.TranslateStream(pb.TranslateStreamRequest(text=text), timeout=30)
                ]
                got = messages[-1].result.result.hypotheses[0].text
            else:
                options = BEAM if beam == 5 else pb.DecodeOptions()
                answer = await stub.Translate(pb.TranslateRequest(texts=[text], options=options), timeout=30)
                got = answer.results[0].hypotheses[0].text
            key = "OK" if got == expected[(text, beam)] else "WRONG"
        except grpc.aio.AioRpcError as exc:
            key = exc.code().name
            if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                await asyncio.sleep(retry_delay_s(exc) or 0.05)
            elif exc.code() is grpc.StatusCode.UNAVAILABLE:
                await asyncio.sleep(0.05)  # the server is gone: a real client would go elsewhere
        tally[key] = tally.get(key, 0) + 1


async def main(args: argparse.Namespace) -> None:
    texts = date_texts(48, seed=7)
    with Server() as quiet:
        expected = await _reference(quiet.address, texts)
    rows = []
    for run in range(args.runs):
        server = Server().start()
        tally: dict[str, int] = {}
        stop = [False]
        channel = grpc.aio.insecure_channel(server.address)
        stub = pb_grpc.TranslatorStub(channel)
        clients = [
            asyncio.ensure_future(_client(stub, i, texts, expected, tally, stop)) for i in range(args.clients)
        ]
        await asyncio.sleep(args.load_seconds)
        before = dict(tally)
        server.signal(signal.SIGKILL)
        server.wait()
        await asyncio.sleep(1.0)  # clients meet the dead server
        stop[0] = True
        await asyncio.gather(*clients)
        await channel.close()
        started = time.monotonic()
        restarted = Server().start()
        restart_s = time.monotonic() - started
        restarted.stop()
        after = {k: tally.get(k, 0) - before.get(k, 0) for k in tally}
        rows.append({"run": run + 1, "ok_before_kill": before.get("OK", 0), "after_kill": after,
                     "wrong": tally.get("WRONG", 0), "restart_to_serving_s": restart_s})  # fmt: skip
        print(rows[-1], flush=True)
    print(table(rows, ["run", "ok_before_kill", "after_kill", "wrong", "restart_to_serving_s"]))
    print(f"wrote {write('sigkill', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
