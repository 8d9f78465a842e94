"""The gRPC floor: a Translator server that decodes nothing.

Translate answers every request with one canned translation, the size of a typical eng-fra
answer, so a load test against it measures what Python gRPC, protobuf and the client cost per
request on this machine: the part of a served request that no batching can shrink. `s2s bench
--variants grpc-floor` starts it beside the real servers (docs/performance.md, "The budget").

    python -m service.bench.floor_server --port 50099
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

# "Tom is a good guy." -> six output tokens, as the eng-fra model answers it.
_TOKENS = ["Tom", "est", "un", "bon", "gars", "."]
_ANSWER = pb.TranslationResult(
    hypotheses=[
        pb.Hypothesis(
            text="Tom est un bon gars.",
            tokens=_TOKENS,
            token_ids=[11, 12, 13, 14, 15, 16],
            token_log_probs=[-0.1] * len(_TOKENS),
            score=-0.6,
            raw_score=-0.6,
            finish_reason=pb.FINISH_REASON_EOS,
        )
    ],
    source_tokens=["Tom", "is", "a", "good", "guy", "."],
)


class FloorServicer(pb_grpc.TranslatorServicer):
    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext):
        return pb.TranslateResponse(results=[_ANSWER] * len(request.texts))


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_TranslatorServicer_to_server(FloorServicer(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"cannot listen on {host}:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
