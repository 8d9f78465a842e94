"""`s2s translate --input FILE`: offline translation with the server's own scheduler and no
server; the same answers the server gives, in input order, one line per source (n with
n-best), bad lines answered with empty ones, and the CLI's exit codes."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import E2EModels, date_texts, e2e_config

from service.client import AsyncTranslatorClient
from service.offline import translate_lines
from service.offline_model import OfflineConfig
from service.server import running_server

S2S = [sys.executable, "-m", "s2s.cli"]


def _run(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*S2S, *args], input=stdin, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("loops", [1, 2], ids=["one-loop", "two-loops"])
async def test_offline_answers_equal_the_servers_in_input_order(models: E2EModels, loops: int):
    texts = date_texts(150)
    out = io.StringIO()
    # A small window: lines finish out of order and must still come out in order. Two loops
    # (the default on two cores) split the window between two batches; the answers must not move.
    # The length penalty crosses as a plain float offline and as the message's float32 served.
    penalty = {"length_penalty": 0.6} if loops == 2 else {}
    config = OfflineConfig(
        bundle=models.bundle, beam_size=3, in_flight=7, threads=loops, loops=loops, **penalty
    )
    report = await translate_lines(texts, config, out)
    offline = out.getvalue().splitlines()
    async with running_server(e2e_config(models)) as server:
        async with AsyncTranslatorClient(server.address, timeout=60) as client:
            served = []
            for start in range(0, len(texts), 16):
                answers = await client.translate(texts[start : start + 16], beam_size=3, **penalty)
                served += [t.text for t in answers]
    assert report.lines == 150 and report.invalid == 0
    assert offline == served
    assert report.output_words == sum(len(t.split()) for t in served)


async def test_bad_lines_are_empty_lines_and_n_best_gives_n_lines(models: E2EModels):
    lines = ["1 May 2001\n", "\n", "x" * 5000 + "\n", "3 June 2003\n"]
    out = io.StringIO()
    report = await translate_lines(lines, OfflineConfig(bundle=models.bundle, beam_size=2, n_best=2), out)
    written = out.getvalue().split("\n")[:-1]
    assert len(written) == 8  # two per source
    assert written[2:6] == ["", "", "", ""] and all(written[:2]) and all(written[6:])
    assert report.invalid == 2 and report.problems[0].startswith("line 2:")
    assert "characters" in report.problems[1] and report.problems[1].startswith("line 3:")


def test_the_command_reads_a_file_or_stdin_and_writes_a_file(models: E2EModels, tmp_path: Path):
    source = tmp_path / "in.txt"
    source.write_text("1 May 2001\n2 June 2002\n")
    output = tmp_path / "out.txt"
    done = _run("translate", "--input", str(source), "--output", str(output), "--bundle", str(models.bundle))
    assert done.returncode == 0, done.stderr
    assert len(output.read_text().splitlines()) == 2 and "translated 2 lines" in done.stderr
    piped = _run("translate", "--input", "-", "--bundle", str(models.bundle), stdin=source.read_text())
    assert piped.returncode == 0 and piped.stdout == output.read_text()


def test_every_line_reaches_a_buffered_stdout_although_the_command_skips_teardown(models: E2EModels):
    # The command ends with os._exit, which flushes nothing, so it flushes stdout itself. Some
    # machines (the one this was written on among them) set PYTHONUNBUFFERED, which would hide a missing
    # flush: the child runs without it, as a user's shell does.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    texts = date_texts(40)
    piped = _run(
        "translate", "--input", "-", "--bundle", str(models.bundle), stdin="\n".join(texts) + "\n", env=env
    )
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.splitlines()) == 40 and all(piped.stdout.splitlines())


@pytest.mark.parametrize("given", [None, "2"], ids=["unset", "the-users"])
def test_the_command_keeps_numpys_openblas_to_one_thread_unless_the_user_says(
    models: E2EModels, tmp_path: Path, given: str | None
):
    # Set before numpy loads, or OpenBLAS has started a thread per core already (~0.07 s).
    source = tmp_path / "in.txt"
    source.write_text("1 May 2001\n")
    code = (
        "import os, sys\n"
        "from s2s.cli import main\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded before the command ran'\n"
        f"code = main(['translate', '--input', {str(source)!r}, '--bundle', {str(models.bundle)!r}])\n"
        "print(code, os.environ.get('OPENBLAS_NUM_THREADS'), file=sys.stderr)\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    if given:
        env["OPENBLAS_NUM_THREADS"] = given
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"0 {given or 1}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beam", "0"], "beam_size"),
        (["--input", "{tmp}/missing.txt"], "missing.txt"),
        (["--bundle", "{tmp}/nowhere"], "does not exist"),
        (["some text"], "--input takes no TEXT"),
        (["--loops", "-1"], "--loops must be >= 0"),
        (["--precision", "int8"], "has no 'int8' graphs"),  # the option reaches the sessions
    ],
)
def test_usage_and_input_errors_exit_2_with_a_line_saying_why(
    models: E2EModels, tmp_path: Path, args: list[str], message: str
):
    source = tmp_path / "in.txt"
    source.write_text("1 May 2001\n")
    base = ["translate", "--input", str(source), "--bundle", str(models.bundle)]
    done = _run(*base, *(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_graph_whose_bytes_differ_from_the_manifest_is_refused(models: E2EModels, tmp_path: Path):
    # Offline translation reads only the graphs it runs, and checks those bytes (engine/sessions.py).
    import shutil

    bundle = Path(shutil.copytree(models.bundle, tmp_path / "bundle"))
    graph = next(bundle.glob("decoder_step.opt.onnx"), bundle / "decoder_step.onnx")
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    source = tmp_path / "in.txt"
    source.write_text("1 May 2001\n")
    done = _run("translate", "--input", str(source), "--bundle", str(bundle))
    assert done.returncode == 2, done.stderr
    assert f"{graph.name} failed verification: sha256 mismatch" in done.stderr
    assert "Traceback" not in done.stderr and not done.stdout


def test_int8_graphs_translate_every_line(models: E2EModels, tmp_path: Path):
    from export.exporter import ExportConfig, export_model

    checkpoint = {**models.checkpoint, "name": "dates-int8"}
    bundle = export_model(models.model, checkpoint, ExportConfig(out_dir=tmp_path, quantize="int8"))
    source = tmp_path / "in.txt"
    source.write_text("".join(f"{text}\n" for text in date_texts(20)))
    done = _run("translate", "--input", str(source), "--bundle", str(bundle), "--precision", "int8")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 20 and all(done.stdout.splitlines())


def test_translate_without_texts_or_input_says_what_it_needs():
    done = _run("translate")
    assert done.returncode == 2 and "--input FILE" in done.stderr


async def test_many_lines_stay_within_the_window(models: E2EModels):
    """A window of 4 over 300 lines: at most 4 are ever in the scheduler at once."""
    seen: list[int] = []
    out = io.StringIO()

    class Lines:
        def __iter__(self):
            for text in date_texts(300):
                seen.append(len(asyncio.all_tasks()))
                yield text

    await translate_lines(Lines(), OfflineConfig(bundle=models.bundle, in_flight=4, threads=1), out)
    assert len(out.getvalue().splitlines()) == 300
    assert max(seen) <= 1 + 4, max(seen)  # this test's task + the window's (the scheduler is a thread)
