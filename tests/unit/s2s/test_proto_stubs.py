"""The committed gRPC stubs in s2s/v1/ must be exactly what scripts/gen_proto.sh makes from proto/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STUBS = ("translator_pb2.py", "translator_pb2.pyi", "translator_pb2_grpc.py", "__init__.py")


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True, env=env)
    for name in STUBS:
        fresh = (tmp_path / "s2s" / "v1" / name).read_text()
        committed_path = ROOT / "s2s" / "v1" / name
        assert committed_path.exists(), f"{committed_path} is missing: run scripts/gen_proto.sh"
        assert committed_path.read_text() == fresh, (
            f"s2s/v1/{name} is stale: proto/ changed since the stubs were generated; "
            "run scripts/gen_proto.sh and commit the result"
        )


def test_stubs_import_under_the_pinned_protobuf_runtime() -> None:
    # The generated _pb2 checks the protobuf runtime version at import; a mismatch raises here.
    from s2s.v1 import translator_pb2, translator_pb2_grpc

    assert translator_pb2.DESCRIPTOR.services_by_name["Translator"].full_name == "s2s.v1.Translator"
    assert hasattr(translator_pb2_grpc, "TranslatorServicer")


@pytest.mark.parametrize("field", ["beam_size", "n_best", "max_length", "max_length_ratio", "length_penalty"])
def test_decode_options_tell_an_explicit_zero_from_unset(field: str) -> None:
    # Validation relies on this: beam_size=0 is an error, an unset beam_size takes the default.
    from s2s.v1 import translator_pb2

    assert not translator_pb2.DecodeOptions().HasField(field)
    assert translator_pb2.DecodeOptions(**{field: 0}).HasField(field)
