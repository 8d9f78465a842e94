"""Container health probe: asks the server's gRPC health service whether it is SERVING.

    python -m service.healthcheck [--port 50051] [--service s2s.v1.Translator]

Exit status 0 when the service reports SERVING, 1 otherwise (NOT_SERVING while starting or
draining, unknown service, unreachable, timeout): what Docker's HEALTHCHECK and compose's
healthcheck expect. It reads S2S_PORT like `s2s serve`, so the probe follows the server's port
without extra configuration; where the server has a plaintext health port (S2S_HEALTH_PORT, set
when its gRPC port speaks TLS), it asks there instead. No grpc_health_probe binary is needed in
the image, and nothing here imports torch or the model.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from s2s.options import add_option

SERVICE_NAME = "s2s.v1.Translator"  # the health service name the server registers besides ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service.healthcheck", description=__doc__.split("\n")[0])
    # Not S2S_HOST: the server binds 0.0.0.0, the probe runs next to it and dials loopback.
    add_option(parser, "--host", env="S2S_HEALTH_HOST", default="127.0.0.1", help="server address to probe")
    health_port = os.environ.get("S2S_HEALTH_PORT", "").strip().lower() not in ("", "off", "-1", "none")
    add_option(
        parser,
        "--port",
        env="S2S_HEALTH_PORT" if health_port else "S2S_PORT",
        default=50051,
        type=int,
        help="server port answering gRPC health (its plaintext health port when it has one)",
    )
    add_option(
        parser,
        "--service",
        env="S2S_HEALTH_SERVICE",
        default=SERVICE_NAME,
        help='health service name to ask about ("" = the whole server)',
    )
    add_option(
        parser,
        "--timeout",
        env="S2S_HEALTH_TIMEOUT",
        default=3.0,
        type=float,
        help="seconds to wait for an answer",
    )
    return parser


def check(target: str, service: str, timeout_s: float) -> tuple[bool, str]:
    """(serving?, what was seen) for one Check call against `target` (host:port)."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    host = f"[{args.host}]" if ":" in args.host else args.host
    target = f"{host}:{args.port}"
    serving, seen = check(target, args.service, args.timeout)
    print(f"{target} {args.service or '<server>'}: {seen}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
