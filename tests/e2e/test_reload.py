"""Hot model reload through the Admin service and SIGHUP: a new version takes traffic only once
loaded and warm, a corrupt or unloadable one is refused while the old one keeps serving, calls in
flight finish on the version they started on, and an unloaded version's series disappear."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path

import grpc
import pytest
from bundle_tools import copy_bundle
from e2e_support import DEFAULT_MODEL, ENDLESS_MODEL, E2EModels, e2e_config, until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from local_server import sample, scrape_settled_async

from s2s.bundle import MANIFEST, sha256_file
from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc
from service.server import running_server

ADMIN_TOKEN, TRANSLATE_TOKEN = "a" * 32, "t" * 32


def _specs(specs) -> set[str]:
    return {f"{s.name}/{s.version}" for s in specs}


@pytest.fixture
def root(models: E2EModels, tmp_path: Path) -> Path:
    """A bundle tree the server is pointed at: dates-tiny/1 and endless/1."""
    tree = tmp_path / "bundles"
    copy_bundle(models.bundle, tree)
    copy_bundle(models.endless_bundle, tree)
    return tree


async def test_a_new_version_is_loaded_warm_and_becomes_the_newest(models: E2EModels, root: Path):
    async with running_server(e2e_config(models, bundles=(root,), metrics_port=0)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin, translator = pb_grpc.AdminStub(channel), pb_grpc.TranslatorStub(channel)
            copy_bundle(models.bundle, root, version="2")
            report = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=60)
            assert _specs(report.loaded) == {f"{DEFAULT_MODEL}/2"} and not report.refused
            assert _specs(report.serving) == {
                f"{DEFAULT_MODEL}/1",
                f"{DEFAULT_MODEL}/2",
                f"{ENDLESS_MODEL}/1",
            }
            answer = await translator.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=30)
            assert answer.model.version == "2" and answer.results[0].hypotheses[0].text
            pinned = pb.ModelSpec(name=DEFAULT_MODEL, version="1")
            assert (
                await translator.Translate(pb.TranslateRequest(texts=["1 May 2001"], model=pinned))
            ).model.version == "1"
            again = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=60)
            assert not again.loaded and not again.unloaded  # nothing changed on disk: nothing to do
        scraped = await scrape_settled_async(server.metrics_server.url)
        assert sample(scraped, "s2s_model_info", model=DEFAULT_MODEL, version="2") == 1
        assert server.registry.get(DEFAULT_MODEL, "2").runner.warm_up_s is not None  # warm before traffic


async def test_a_corrupt_or_unloadable_bundle_is_refused_and_the_old_one_keeps_serving(
    models: E2EModels, root: Path
):
    async with running_server(e2e_config(models, bundles=(root,))) as server:
        corrupt = copy_bundle(models.bundle, root, version="3")
        graph = corrupt / "decoder_step.onnx"
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))  # the manifest's checksum no longer matches
        garbage = copy_bundle(models.bundle, root, version="4")
        for name in ("decoder_step.onnx", "decoder_step.opt.onnx"):
            (garbage / name).write_bytes(b"not an onnx graph")
        manifest = json.loads((garbage / MANIFEST).read_text())
        manifest["files"] = {
            name: sha256_file(garbage / name) for name in manifest["files"]
        }  # checksums right
        (garbage / MANIFEST).write_text(json.dumps(manifest))
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin, translator = pb_grpc.AdminStub(channel), pb_grpc.TranslatorStub(channel)
            report = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=60)
            reasons = {Path(r.path).name: r.reason for r in report.refused}
            assert "sha256 mismatch" in reasons["3"], reasons
            assert "cannot load its graphs" in reasons["4"], reasons
            assert not report.loaded and not report.unloaded
            answer = await translator.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=30)
            assert answer.model.version == "1"


async def test_calls_in_flight_finish_on_the_old_version_and_it_is_unloaded_after(
    models: E2EModels, root: Path
):
    async with running_server(e2e_config(models, bundles=(root,), metrics_port=0)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin, translator = pb_grpc.AdminStub(channel), pb_grpc.TranslatorStub(channel)
            old = server.registry.get(ENDLESS_MODEL, "1")
            long_call = asyncio.ensure_future(
                translator.Translate(
                    pb.TranslateRequest(
                        texts=["1 May 2001"] * 8,
                        options=pb.DecodeOptions(beam_size=8, max_length=512),
                        model=pb.ModelSpec(name=ENDLESS_MODEL),
                    ),
                    timeout=120,
                )
            )
            await until(lambda: old.scheduler.running_requests > 0)
            copy_bundle(models.endless_bundle, root, version="2")
            shutil.rmtree(root / ENDLESS_MODEL / "1")  # the old version goes away on disk
            report = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=60)
            assert _specs(report.loaded) == {f"{ENDLESS_MODEL}/2"}
            assert _specs(report.unloaded) == {f"{ENDLESS_MODEL}/1"}
            newer = await translator.Translate(
                pb.TranslateRequest(texts=["1 May 2001"], model=pb.ModelSpec(name=ENDLESS_MODEL)), timeout=30
            )
            assert newer.model.version == "2"
            finished = await long_call
            assert finished.model.version == "1" and len(finished.results[0].hypotheses[0].tokens) == 512
            await server.reloader.settled()
        scraped = await scrape_settled_async(server.metrics_server.url)
        assert not [
            k
            for k in scraped
            if dict(k[1]).get("model") == ENDLESS_MODEL and dict(k[1]).get("version") == "1"
        ]


async def test_unload_refuses_the_last_model_unknown_ones_and_half_specs(models: E2EModels):
    async with running_server(e2e_config(models, bundles=(models.bundle,))) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin = pb_grpc.AdminStub(channel)
            cases = [
                (pb.ModelSpec(name=DEFAULT_MODEL, version="1"), grpc.StatusCode.FAILED_PRECONDITION),
                (pb.ModelSpec(name="nope", version="1"), grpc.StatusCode.NOT_FOUND),
                (pb.ModelSpec(name=DEFAULT_MODEL), grpc.StatusCode.INVALID_ARGUMENT),
            ]
            for spec, code in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await admin.UnloadModel(pb.UnloadModelRequest(model=spec), timeout=10)
                assert caught.value.code() is code, spec


async def test_admin_calls_need_the_admin_scope(models: E2EModels, tmp_path: Path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TRANSLATE_TOKEN}\n{ADMIN_TOKEN} admin\n")
    async with running_server(e2e_config(models, auth_tokens=tokens)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin = pb_grpc.AdminStub(channel)
            expected = {
                None: grpc.StatusCode.UNAUTHENTICATED,
                TRANSLATE_TOKEN: grpc.StatusCode.PERMISSION_DENIED,
            }
            for token, code in expected.items():
                metadata = (("authorization", f"Bearer {token}"),) if token else None
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=30, metadata=metadata)
                assert caught.value.code() is code
            ok = await admin.ReloadModels(
                pb.ReloadModelsRequest(), timeout=30, metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),)
            )
            assert ok.serving


async def test_sighup_reloads_a_real_server_process(models: E2EModels, root: Path):
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "s2s.cli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--metrics-port", "off", "--bundle", str(root), "--threads", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), 120)).decode()
        port = int(line.split("on 127.0.0.1:")[1].split()[0])
        copy_bundle(models.bundle, root, version="5")
        server.send_signal(signal.SIGHUP)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            translator = pb_grpc.TranslatorStub(channel)

            async def newest() -> str:
                return (await translator.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)).version

            for _ in range(600):
                if await newest() == "5":
                    break
                await asyncio.sleep(0.1)
            assert await newest() == "5"
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 60) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_health_and_metrics_follow_the_models_served(models: E2EModels, root: Path):
    async with running_server(e2e_config(models, bundles=(root,), metrics_port=0)) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin, health = pb_grpc.AdminStub(channel), health_pb2_grpc.HealthStub(channel)

            async def status(name: str) -> int:
                request = health_pb2.HealthCheckRequest(service=f"s2s.v1.Translator/{name}")
                return (await health.Check(request, timeout=10)).status

            assert await status(ENDLESS_MODEL) == health_pb2.HealthCheckResponse.SERVING
            shutil.rmtree(root / ENDLESS_MODEL)
            copy_bundle(models.bundle, root, version="2")
            report = await admin.ReloadModels(pb.ReloadModelsRequest(), timeout=60)
            assert _specs(report.unloaded) == {f"{ENDLESS_MODEL}/1"} and _specs(report.loaded) == {
                f"{DEFAULT_MODEL}/2"
            }
            assert await status(ENDLESS_MODEL) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await status(DEFAULT_MODEL) == health_pb2.HealthCheckResponse.SERVING
            await server.reloader.settled()
        scraped = await scrape_settled_async(server.metrics_server.url)
        assert sample(scraped, "s2s_model_reloads_total", result="loaded") == 1
        assert sample(scraped, "s2s_model_reloads_total", result="unloaded") == 1
        assert sample(scraped, "s2s_model_reloads_total", result="refused") == 0
