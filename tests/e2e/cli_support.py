"""Running the real `s2s` command in a child process (imported as `cli_support`): with pipes, as a
script or CI runs it, or on a pseudo-terminal, as a person at a terminal sees it (progress bars
are drawn only there)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A record in the format s2s.cli configures: "2026-12-01 07:04:36,123 INFO training.train: ...".
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")
# Small enough to train in a few seconds on one thread; big enough for a real checkpoint.
TINY_TRAIN = ("--dates-train", "640", "--dates-valid", "64", "--batch-size", "32", "--hidden", "16",
              "--emb-dim", "8", "--threads", "1")  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}  # defaults, not the caller's
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def s2s(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    """`s2s ARGS` with stdout and stderr on pipes (not a terminal)."""
    command = [sys.executable, "-m", "s2s.cli", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def s2s_in_terminal(*args: object, columns: int = 120, timeout: float = 240) -> tuple[int, str]:
    """`s2s ARGS` with stdin, stdout and stderr on one pseudo-terminal `columns` wide; returns
    (exit code, everything it wrote, with the terminal's \\r\\n turned back into \\n)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    command = [sys.executable, "-m", "s2s.cli", *map(str, args)]
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(), stdin=child, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    try:
        while True:  # read as it comes: a full terminal buffer would block the child
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def glued_log_records(output: str) -> list[str]:
    """Log records that do not start a line: each with the 40 characters written before it."""
    return [
        output[max(0, m.start() - 40) : m.end()]
        for m in LOG_RECORD.finditer(output)
        if m.start() > 0 and output[m.start() - 1] not in "\r\n"
    ]


def screen_lines(output: str) -> list[str]:
    """The lines as a terminal leaves them: what follows the last carriage return of each."""
    return [line.rsplit("\r", 1)[-1] for line in output.split("\n")]


def train_tiny(out: Path, *extra: object) -> Path:
    """A real `s2s train` of a tiny dates model into `out`; returns its checkpoint.pt."""
    done = s2s("train", "--out", out, *TINY_TRAIN, "--epochs", "1", "--no-progress", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "checkpoint.pt"
