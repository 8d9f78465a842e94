"""Property-based fuzzing (hypothesis, bounded) of a real `s2s serve` process: any request message
and any raw bytes get an answer with a deliberate status code (never UNKNOWN, INTERNAL or no
answer), and the server keeps serving. scripts/reliability/fuzz.py runs the same at scale."""

from __future__ import annotations

import grpc
import pytest
from e2e_support import E2EModels
from local_server import VENV_BIN, ServerProcess, free_port, wait_serving

from s2s.v1 import translator_pb2 as pb
from s2s.v1 import translator_pb2_grpc as pb_grpc

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DELIBERATE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = (
    "/s2s.v1.Translator/Translate",
    "/s2s.v1.Translator/TranslateStream",
    "/s2s.v1.Translator/GetModelInfo",
)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

int32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-2, 20))
floats = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True), st.floats(-2, 20, width=32))
options = st.builds(
    lambda fields, flags: pb.DecodeOptions(**fields, return_attention=flags[0], replace_unk=flags[1]),
    st.fixed_dictionaries(
        {},
        optional={
            "beam_size": int32,
            "n_best": int32,
            "max_length": int32,
            "max_length_ratio": floats,
            "length_penalty": floats,
        },
    ),
    st.tuples(st.booleans(), st.booleans()),
)
texts = st.one_of(
    st.text(max_size=150), st.sampled_from(["1 May 2001", "31/12/1999", " ", "\x00", "🙂" * 40])
)
models = st.one_of(
    st.just(pb.ModelSpec()),
    st.builds(pb.ModelSpec, name=st.text(max_size=80), version=st.text(max_size=20)),
    st.builds(
        pb.ModelSpec, name=st.sampled_from(["dates-tiny", "endless"]), version=st.sampled_from(["", "1", "2"])
    ),
)


@pytest.fixture(scope="module")
def server_port(models: E2EModels, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    command = [str(VENV_BIN / "s2s"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--metrics-port", "off", "--bundle", f"{models.bundle},{models.endless_bundle}",
               "--threads", "1", "--max-texts", "16", "--max-text-chars", "100", "--max-output-len", "64",
               "--max-beam", "4"]  # fmt: skip
    with ServerProcess(command, env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp)}, cwd=tmp,
                       log_path=tmp / "s2s.log") as server:  # fmt: skip
        wait_serving(server, port)
        yield port
        server.assert_running()
        log = server.log()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def channel(server_port: int):
    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as opened:
        yield opened


def _code(call) -> grpc.StatusCode:
    try:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            for _ in result:
                pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@FUZZ
@given(texts=st.lists(texts, max_size=20), options=options, model=models)
def test_any_translate_request_gets_a_deliberate_answer(channel, texts, options, model):
    stub = pb_grpc.TranslatorStub(channel)
    request = pb.TranslateRequest(texts=texts, options=options, model=model)
    assert _code(lambda: stub.Translate(request, timeout=30)) in DELIBERATE


@FUZZ
@given(text=texts, options=options, model=models)
def test_any_stream_request_gets_a_deliberate_answer(channel, text, options, model):
    stub = pb_grpc.TranslatorStub(channel)
    request = pb.TranslateStreamRequest(text=text, options=options, model=model)
    assert _code(lambda: stub.TranslateStream(request, timeout=30)) in DELIBERATE


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    body=st.one_of(st.binary(max_size=300), st.binary(min_size=1, max_size=3)),
)
def test_any_bytes_get_a_deliberate_answer(channel, method, body):
    if method.endswith("Stream"):
        call = channel.unary_stream(method)
    else:
        call = channel.unary_unary(method)
    assert _code(lambda: call(body, timeout=30)) in DELIBERATE


def test_the_server_still_serves_after_the_fuzzing(channel):
    stub = pb_grpc.TranslatorStub(channel)
    assert stub.Translate(pb.TranslateRequest(texts=["1 May 2001"]), timeout=30).results[0].hypotheses
