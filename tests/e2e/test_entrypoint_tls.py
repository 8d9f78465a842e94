"""The serving entrypoint with TLS, mutual TLS and tokens on, configured as the compose override
(deploy/compose/docker-compose.tls.yml) and the Kubernetes secure overlay's components configure
it: the image's HEALTHCHECK still passes (through the plaintext health port), a client with the
right certificate and token translates, others are refused, and SIGTERM exits 0."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml
from local_server import VENV_BIN, ServerProcess, free_port, healthcheck, wait_serving
from test_entrypoint import (
    DEPLOY,
    EXPECTED,
    SOURCE,
    compose_env,
    container_env,
    deployment_env,
    image_entrypoint_and_env,
)

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.tls import channel_credentials

certs = pytest.importorskip("certs", reason="needs `cryptography` (the dev extra) to make certificates")
TOKEN = "k" * 32


def _compose_tls_env() -> dict[str, str]:
    override = yaml.safe_load((DEPLOY / "compose" / "docker-compose.tls.yml").read_text())
    return {**compose_env(), **{k: str(v) for k, v in override["services"]["s2s"]["environment"].items()}}


def _kubernetes_secure_env() -> dict[str, str]:
    env = deployment_env()
    for component in ("tls", "auth"):
        kustomization = yaml.safe_load(
            (DEPLOY / "k8s" / "components" / component / "kustomization.yaml").read_text()
        )
        for generator in kustomization["configMapGenerator"]:
            env.update(literal.split("=", 1) for literal in generator["literals"])
    return env


def _secrets(tmp_path: Path, env: dict[str, str]) -> tuple[dict[str, str], object]:
    """Write the certificates and the token file where env says, under tmp_path."""
    pki = certs.make_pki(tmp_path / "pki")
    files = {
        "S2S_TLS_CERT": pki.server_cert,
        "S2S_TLS_KEY": pki.server_key,
        "S2S_TLS_CLIENT_CA": pki.ca,
    }
    mapped = dict(env)
    for name, source in files.items():
        target = tmp_path / "mounted" / env[name].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        mapped[name] = str(target)
    tokens = tmp_path / "mounted" / env["S2S_AUTH_TOKENS"].lstrip("/")
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.write_text(f"{TOKEN} translate\n")
    mapped["S2S_AUTH_TOKENS"] = str(tokens)
    return mapped, pki


def _translate(port: int, credentials, token: str | None) -> str:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = pb_grpc.TranslatorStub(channel)
        response = stub.Translate(pb.TranslateRequest(texts=[SOURCE]), timeout=30, metadata=metadata)
    return response.results[0].hypotheses[0].text


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


@pytest.mark.parametrize("platform", ["compose", "kubernetes"])
def test_the_secure_entrypoint_serves_only_callers_with_a_certificate_and_a_token(
    platform: str, tmp_path: Path
):
    entrypoint, _ = image_entrypoint_and_env(DEPLOY / "docker" / "serve.Dockerfile")
    platform_env = _compose_tls_env() if platform == "compose" else _kubernetes_secure_env()
    env, pki = _secrets(tmp_path, container_env("serve.Dockerfile", platform_env, tmp_path))
    env["S2S_HEALTH_PORT"] = str(free_port())
    port = int(env["S2S_PORT"])
    command = [str(VENV_BIN / entrypoint[0]), *entrypoint[1:]]
    with ServerProcess(command, env=env, cwd=tmp_path, log_path=tmp_path / "server.log") as server:
        wait_serving(server, port, env)  # the image's HEALTHCHECK: it asks S2S_HEALTH_PORT
        client = channel_credentials(pki.ca, pki.client_cert, pki.client_key)
        assert _translate(port, client, TOKEN) == EXPECTED
        assert _code(lambda: _translate(port, client, None)) is grpc.StatusCode.UNAUTHENTICATED
        no_cert = channel_credentials(pki.ca)
        assert _code(lambda: _translate(port, no_cert, TOKEN)) is grpc.StatusCode.UNAVAILABLE
        status = server.stop(timeout_s=float(env["S2S_GRACE_PERIOD"]) + 10)
        assert status == 0, f"exit status {status} on SIGTERM:\n{server.log()}"
    assert healthcheck(port, env).returncode == 1
