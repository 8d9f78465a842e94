"""`s2s serve` and `s2s translate` as processes: port 0, metrics, SIGTERM/SIGINT exit 0, refusal
to start on a bad bundle, and a server process in which torch cannot even be imported."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from e2e_support import E2EModels
from grpc_health.v1 import health_pb2, health_pb2_grpc
from local_server import free_port

# The s2s CLI with torch made unimportable: any torch import on the serving path fails loudly.
NO_TORCH_S2S = [
    sys.executable,
    "-c",
    "import sys; sys.modules['torch'] = None; from s2s.cli import main; sys.exit(main(sys.argv[1:]))",
]
START_TIMEOUT_S = 120  # guards against hanging only; not a speed target


async def _run(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *NO_TORCH_S2S, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_on_port_0_translate_then_exit_0_on_signal(
    models: E2EModels, tmp_path: Path, sig: signal.Signals
) -> None:
    server = await asyncio.create_subprocess_exec(
        *NO_TORCH_S2S, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
        "--bundle", f"{models.bundle},{models.endless_bundle}", "--threads", "1", "--grace-period", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT_S)).decode()  # type: ignore[union-attr]
        match = re.search(r"on 127\.0\.0\.1:(\d+) \(metrics: (http://\S+)\)", line)
        assert match, f"no address line on stdout: {line!r}"
        port, metrics_url = int(match.group(1)), match.group(2)
        assert port != 0

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        png = tmp_path / "attention.png"
        code, out, err = await _run(
            "translate", "24 November 2026", "--server", f"127.0.0.1:{port}", "--beam", "3",
            "--attention", str(png),
        )  # fmt: skip
        assert code == 0, err
        assert re.fullmatch(r"\S+\n", out), out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        code, out, _ = await _run("translate", "1 May 2001", "--server", f"127.0.0.1:{port}", "--stream")
        assert code == 0 and re.fullmatch(r"\S+\n", out), out  # the streamed line, once

        # Input errors exit 2 and name every bad field once: the empty text and the beam.
        code, _, err = await _run("translate", "", "--server", f"127.0.0.1:{port}", "--beam", "0")
        assert code == 2 and "INVALID_ARGUMENT" in err, err
        assert err.count("options.beam_size") == 1 and err.count("texts[0]") == 1, err

        several = tmp_path / "several.png"
        code, _, err = await _run(
            "translate", "1 May 2001", "2 June 2002", "--server", f"127.0.0.1:{port}",
            "--attention", str(several),
        )  # fmt: skip
        assert code == 0, err
        for name in ("several-1.png", "several-2.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        )
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Translate"' in metrics
        assert "s2s_" in metrics

        server.send_signal(sig)
        assert await asyncio.wait_for(server.wait(), 60) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_translate_without_a_server_says_what_to_check() -> None:
    code, _, err = await _run(
        "translate", "1 May 2001", "--server", f"127.0.0.1:{free_port()}", "--timeout", "5"
    )
    assert code == 1 and "UNAVAILABLE" in err and "hint: is `s2s serve` running" in err, err


async def test_serve_refuses_a_missing_bundle(tmp_path: Path) -> None:
    code, _, err = await _run(
        "serve", "--bundle", str(tmp_path / "missing"), "--port", "0", "--metrics-port", "off"
    )
    assert code == 2
    assert "cannot start the server" in err and "missing" in err


async def test_serve_refuses_a_corrupt_bundle(models: E2EModels, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(models.bundle, corrupt)
    graph = corrupt / "decoder_step.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    code, _, err = await _run("serve", "--bundle", str(corrupt), "--port", "0", "--metrics-port", "off")
    assert code == 2
    assert "sha256 mismatch" in err and "decoder_step.onnx" in err
