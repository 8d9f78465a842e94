"""TLS, mutual TLS, certificate rotation, bearer tokens and the plaintext health port, against a
real server and real clients; the certificates come from a CA each test makes (tests/e2e/certs.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from certs import make_pki
from e2e_support import E2EModels, e2e_config
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.client import AsyncTranslatorClient
from service.server import running_server
from service.tls import TlsConfig, channel_credentials

pytest.importorskip("cryptography", reason="the TLS tests make their certificates with `cryptography`")

TOKEN = "t" * 32
ADMIN_TOKEN = "a" * 32


async def _translates(address: str, **client_args) -> str:
    async with AsyncTranslatorClient(address, timeout=20, retry=False, **client_args) as client:
        return (await client.translate_one("3 May 2004")).text


async def _refused(address: str, **client_args) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _translates(address, **client_args)
    return caught.value.code()


async def test_tls_serves_clients_that_trust_its_ca_and_refuses_plaintext(models: E2EModels, tmp_path: Path):
    pki = make_pki(tmp_path)
    config = e2e_config(models, tls=TlsConfig(pki.server_cert, pki.server_key))
    async with running_server(config) as server:
        assert await _translates(server.address, credentials=channel_credentials(pki.ca))
        assert await _refused(server.address) is grpc.StatusCode.UNAVAILABLE  # plaintext
        other = make_pki(tmp_path / "other")
        assert (
            await _refused(server.address, credentials=channel_credentials(other.ca))
            is grpc.StatusCode.UNAVAILABLE
        )


async def test_mutual_tls_refuses_clients_without_a_certificate_of_its_ca(models: E2EModels, tmp_path: Path):
    pki, other = make_pki(tmp_path), make_pki(tmp_path / "other")
    config = e2e_config(models, tls=TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca))
    async with running_server(config) as server:
        no_cert = channel_credentials(pki.ca)
        assert await _refused(server.address, credentials=no_cert) is grpc.StatusCode.UNAVAILABLE
        foreign = channel_credentials(pki.ca, other.client_cert, other.client_key)
        assert await _refused(server.address, credentials=foreign) is grpc.StatusCode.UNAVAILABLE
        good = channel_credentials(pki.ca, pki.client_cert, pki.client_key)
        assert await _translates(server.address, credentials=good)


async def test_a_renewed_certificate_is_used_without_a_restart_and_a_broken_one_is_not(
    models: E2EModels, tmp_path: Path
):
    old, new = make_pki(tmp_path / "old"), make_pki(tmp_path / "new")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(old.server_cert.read_bytes())
    key.write_bytes(old.server_key.read_bytes())
    async with running_server(e2e_config(models, tls=TlsConfig(cert, key))) as server:
        assert await _translates(server.address, credentials=channel_credentials(old.ca))
        # A broken renewal (the new certificate with the old key) is refused; the old pair stays.
        cert.write_bytes(new.server_cert.read_bytes())
        assert await _translates(server.address, credentials=channel_credentials(old.ca))
        # The whole renewal, as cert-manager swaps the Secret's files: new connections get it.
        key.write_bytes(new.server_key.read_bytes())
        os.utime(cert)  # the broken attempt above already showed this certificate's stat
        assert await _translates(server.address, credentials=channel_credentials(new.ca))
        assert (
            await _refused(server.address, credentials=channel_credentials(old.ca))
            is grpc.StatusCode.UNAVAILABLE
        )


def _token_file(path: Path, *lines: str) -> Path:
    path.write_text("# test tokens\n" + "\n".join(lines) + "\n")
    return path


async def test_tokens_admit_only_valid_callers_and_health_stays_open(models: E2EModels, tmp_path: Path):
    tokens = _token_file(tmp_path / "tokens", TOKEN, f"{ADMIN_TOKEN} translate,admin")
    async with running_server(e2e_config(models, auth_tokens=tokens)) as server:
        assert await _refused(server.address) is grpc.StatusCode.UNAUTHENTICATED
        assert await _refused(server.address, token="x" * 32) is grpc.StatusCode.UNAUTHENTICATED
        assert await _translates(server.address, token=TOKEN)
        assert await _translates(server.address, token=ADMIN_TOKEN)
        async with grpc.aio.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(
                health_pb2.HealthCheckRequest(service="s2s.v1.Translator"), timeout=10
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_rewritten_token_file_takes_effect_without_a_restart(models: E2EModels, tmp_path: Path):
    tokens = _token_file(tmp_path / "tokens", TOKEN)
    async with running_server(e2e_config(models, auth_tokens=tokens)) as server:
        assert await _translates(server.address, token=TOKEN)
        renewed = "n" * 40
        _token_file(tokens, renewed)
        await asyncio.sleep(1.2)  # the file's stat is looked at once a second at most
        assert await _translates(server.address, token=renewed)
        assert await _refused(server.address, token=TOKEN) is grpc.StatusCode.UNAUTHENTICATED
        tokens.write_text("not a token file: too short\n")  # a broken rewrite keeps the last tokens
        await asyncio.sleep(1.2)
        assert await _translates(server.address, token=renewed)


async def test_the_health_port_answers_health_in_plaintext_and_nothing_else(
    models: E2EModels, tmp_path: Path
):
    pki = make_pki(tmp_path)
    config = e2e_config(models, tls=TlsConfig(pki.server_cert, pki.server_key), health_port=0)
    async with running_server(config) as server:
        assert server.health_server is not None
        address = f"127.0.0.1:{server.health_server[1]}"
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert await _refused(address) is grpc.StatusCode.UNIMPLEMENTED  # no Translator there
