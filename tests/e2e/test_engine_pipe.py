"""The engine process's pipe under a flood: the server may write more than the pipe holds while
the engine writes results back, and neither side may wait on the other for ever.

A real engine process (`python -m service.engine_worker FD`) on the shipped bundle. The test plays
the server at its worst: it reads no result until it has written every request (more bytes than
a socket pair buffers), and each result carries attention, so the engine's replies fill the
other direction first.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from engine.sessions import RunnerConfig
from s2s.bundle import DEFAULT_BUNDLE_DIR
from service.engine_worker import send_message
from service.handle import DecodeRequest
from service.scheduler import SchedulerConfig

REQUESTS = 1500
FIRST = 200  # sent before the flood
SOURCE = [5, 6, 7, 8, 9, 10, 11, 12] * 32  # 256 tokens: ~0.5 KiB pickled, 0.7 MiB in all


def test_a_flood_of_submits_while_results_fill_the_other_way_does_not_deadlock():
    ours, theirs = socket.socketpair()
    process = subprocess.Popen([sys.executable, "-m", "service.engine_worker", str(theirs.fileno())],
                               pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)  # fmt: skip
    theirs.close()
    conn = Connection(ours.detach())
    try:
        config = SchedulerConfig(max_rows=64, max_queue=REQUESTS, max_src_tokens=256)
        conn.send(("load", str(DEFAULT_BUNDLE_DIR), RunnerConfig(intra_op_threads=1), config, 30))
        assert conn.poll(120) and conn.recv()[0] == "ready"

        def request(key: int) -> tuple:  # a list of its own: pickle would send a shared one once
            return key, 0.0, DecodeRequest(list(SOURCE), max_len=40, want_attention=True).fields()

        # First enough work that the engine's results fill the pipe back (the test reads none yet).
        send_message(conn, ("many", [("submit", [request(key) for key in range(FIRST)])]))
        time.sleep(2)

        def flood() -> None:
            for start in range(FIRST, REQUESTS, 20):  # blocking sends, as the server's event loop makes,
                batch = [request(key) for key in range(start, min(start + 20, REQUESTS))]
                send_message(conn, ("many", [("submit", batch)]))
                time.sleep(0.02)  # spread over the engine's steps, as calls arrive

        writer = threading.Thread(target=flood, daemon=True)
        writer.start()
        writer.join(60)
        assert not writer.is_alive(), "the engine stopped reading while its own writes were blocked"
        results = 0
        while results < REQUESTS:
            assert conn.poll(60), f"{results} of {REQUESTS} results, then nothing for 60 s"
            message = conn.recv()
            results += sum(1 for _, item in message[1] if item[0] == "result")
        assert results == REQUESTS
        send_message(conn, ("stop",))
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        conn.close()
