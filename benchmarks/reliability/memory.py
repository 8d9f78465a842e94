"""What one request costs the server in memory, for the largest requests its limits allow.

    python benchmarks/reliability/memory.py

For each request below, the server's peak RSS is reset (/proc/PID/clear_refs), the request is
sent alone, and the rise of the peak over the RSS before it is its cost. Target (issue 13): no
allowed request costs more than 50 MB; refused ones cost next to nothing.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from harness import Server, peak_rss_mb, reset_peak_rss, rss_mb, table, write

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

LONG = "Tuesday, 10 July 2007 " * 11  # 242 characters: under max_src_tokens (256) for chars


def _cases() -> dict[str, tuple[str, object]]:
    big_beam = pb.DecodeOptions(beam_size=16, n_best=16, max_length=512)
    return {
        "64 texts, 242 chars, greedy": ("Translate", pb.TranslateRequest(texts=[LONG] * 64)),
        "64 texts, 242 chars, beam 16, n-best 16, max_length 512": (
            "Translate", pb.TranslateRequest(texts=[LONG] * 64, options=big_beam)),
        "attention at the budget (1M values)": (
            "Translate", pb.TranslateRequest(texts=[LONG] * 16, options=pb.DecodeOptions(
                return_attention=True, max_length=256))),  # 16 x 1 x 256 x 242 = 0.99M
        "stream, beam 16, attention": (
            "TranslateStream", pb.TranslateStreamRequest(text=LONG, options=pb.DecodeOptions(
                beam_size=16, return_attention=True, max_length=256))),
        "refused: 16M empty texts (31 MiB)": ("Translate", pb.TranslateRequest(texts=[""] * 16_000_000)),
        "refused: attention over the budget": (
            "Translate", pb.TranslateRequest(texts=[LONG] * 64, options=pb.DecodeOptions(
                beam_size=16, return_attention=True))),
    }  # fmt: skip


async def _send(stub, method: str, request) -> str:
    try:
        if method == "TranslateStream":
            async for _ in stub.TranslateStream(request, timeout=300):
                pass
        else:
            await stub.Translate(request, timeout=300)
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


async def main(args: argparse.Namespace) -> None:
    rows = []
    with Server(["--threads", "2"]) as server:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        async with grpc.aio.insecure_channel(server.address, options=options) as channel:
            stub = pb_grpc.TranslatorStub(channel)
            for _ in range(2):  # warm: every case once, so arenas and caches exist before measuring
                for method, request in _cases().values():
                    await _send(stub, method, request)
            for name, (method, request) in _cases().items():
                before = rss_mb(server.pid)
                reset_peak_rss(server.pid)
                code = await _send(stub, method, request)
                peak = peak_rss_mb(server.pid)
                rows.append({"request": name, "bytes": request.ByteSize(), "code": code,
                             "rss_before_mb": before, "cost_mb": peak - before})  # fmt: skip
                print(rows[-1], flush=True)
    print(table(rows, ["request", "bytes", "code", "rss_before_mb", "cost_mb"]))
    allowed = [r["cost_mb"] for r in rows if r["code"] == "OK"]
    result = {"rows": rows, "max_allowed_cost_mb": max(allowed)}
    print(f"largest cost of an allowed request: {max(allowed):.1f} MB")
    print(f"wrote {write('memory', result)}")


if __name__ == "__main__":
    asyncio.run(main(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()))
