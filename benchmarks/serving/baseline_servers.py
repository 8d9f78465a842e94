"""Translator servers without s2s's scheduler, started by `s2s bench` as baselines:

- `floor`: decodes nothing; every text gets one canned six-token translation. A load test
  against it measures what Python gRPC, protobuf and the client cost per request on this
  machine before any decoding (`--variants grpc-floor`). With `--layers`, the s2s server's own
  metrics interceptor and call gate stand in front of it, as `s2s serve` installs them: what those
  production layers add to every call (`--variants grpc-floor-layers`).
- `pool`: the common way to serve a seq2seq model without batching: the handler hands each text
  to `--workers` threads that decode one request at a time with engine/decode.py (one ONNX
  Runtime loop per request). It validates and answers with s2s's own code, so it pays what the
  s2s server pays around the decoding, and no scheduler bookkeeping (`--variants server-pool`).

    python -m benchmarks.serving.baseline_servers --kind pool --bundle DIR --port 50098
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from engine.decode import Decoder
from engine.sessions import RunnerConfig
from s2s.bundle import load_bundle
from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.config import Limits
from service.responses import translation_result
from service.status import maps_service_errors
from service.validation import validate_options, validate_texts

# "Tom is a good guy." -> six output tokens, as the eng-fra model answers it.
_TOKENS = ["Tom", "est", "un", "bon", "gars", "."]
_CANNED = pb.TranslationResult(
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
    def __init__(self, wait_s: float = 0.0) -> None:
        # Waiting before the answer, as a server waits for its decode loop: what gRPC itself costs
        # around a handler that takes milliseconds (benchmarks/serving/wait_floor.py).
        self.wait_s = wait_s

    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext):
        if self.wait_s:
            await asyncio.sleep(self.wait_s)
        return pb.TranslateResponse(results=[_CANNED] * len(request.texts))


class PoolServicer(pb_grpc.TranslatorServicer):
    def __init__(self, bundle_dir: Path, workers: int, threads: int, precision: str) -> None:
        bundle = load_bundle(bundle_dir)
        self.decoder = Decoder.open(bundle, RunnerConfig(intra_op_threads=threads, precision=precision))
        self.bundle, self.limits = bundle, Limits()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="pool-decode")

    @maps_service_errors  # bad input gets the s2s server's status codes
    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext):
        bundle, loop = self.bundle, asyncio.get_running_loop()
        settings = validate_options(request.options, self.limits, bundle.max_length, bundle.max_length_ratio)
        sources = validate_texts(request.texts, bundle.src_tokenizer, self.limits)
        results = []
        for source in sources:
            hypotheses = await loop.run_in_executor(  # the search options the s2s server would use
                self.pool, self.decoder.decode_ids, source.ids, settings.decode
            )
            results.append(translation_result(hypotheses, source, bundle.tgt_tokenizer, settings))
        return pb.TranslateResponse(results=results)


def _s2s_layers() -> list[grpc.aio.ServerInterceptor]:
    """The interceptors `s2s serve` puts in front of its servicer (service/server.py), in its order."""
    from prometheus_client import CollectorRegistry

    from service.gate import CallGate
    from service.interceptor import GrpcServerMetricsInterceptor

    metrics = GrpcServerMetricsInterceptor(CollectorRegistry())
    metrics.initialize(pb.DESCRIPTOR.services_by_name["Translator"])
    return [metrics, CallGate()]


async def serve(servicer: pb_grpc.TranslatorServicer, host: str, port: int, layers: bool = False) -> None:
    server = grpc.aio.server(interceptors=_s2s_layers() if layers else None)
    pb_grpc.add_TranslatorServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"cannot listen on {host}:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["floor", "pool"], required=True)
    parser.add_argument("--bundle", type=Path, help="bundle directory (pool)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2, help="requests decoded at once (pool)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per session (pool)")
    parser.add_argument("--precision", default="fp32", help="bundle graphs to run (pool)")
    parser.add_argument("--wait-ms", type=float, default=0.0, help="wait before answering (floor)")
    parser.add_argument(
        "--layers", action="store_true", help="s2s's metrics interceptor and call gate in front"
    )
    args = parser.parse_args()
    if args.wait_ms < 0:
        parser.error(f"--wait-ms must be >= 0, got {args.wait_ms}")
    if args.kind == "pool" and args.bundle is None:
        parser.error("--kind pool needs --bundle")
    servicer = (
        FloorServicer(args.wait_ms / 1000)
        if args.kind == "floor"
        else PoolServicer(args.bundle, args.workers, args.threads, args.precision)
    )
    asyncio.run(serve(servicer, args.host, args.port, args.layers))


if __name__ == "__main__":
    main()
