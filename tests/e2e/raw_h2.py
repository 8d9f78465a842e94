"""gRPC calls that no gRPC client sends, over a plain HTTP/2 connection (imported as `raw_h2`).

A gRPC message on the wire is a 5-byte prefix (compressed flag, big-endian length) and the bytes;
`call(port, method, body)` sends `body` as the request stream's DATA exactly as given (a short
length prefix, no DATA at all, garbage) with END_STREAM, and returns the grpc-status and
grpc-message the server answered, or None when it answered nothing within the timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events


def grpc_frame(message: bytes) -> bytes:
    """`message` with gRPC's length prefix (uncompressed)."""
    return struct.pack(">BI", 0, len(message)) + message


@dataclass
class Answer:
    status: int | None  # grpc-status; None: no status came back
    message: str


class RawConnection:
    """One HTTP/2 connection to a plaintext gRPC server; several calls may run on it in turn."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self._send()
        self.authority = f"{host}:{port}"

    def _send(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, method: str, body: bytes, end: bool = True, timeout: str | None = None) -> int:
        """Open a call to `method` with `body` as its DATA; END_STREAM unless end=False;
        `timeout` is the grpc-timeout header as sent ("100m": 100 ms), none if None."""
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", self.authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if timeout is not None:
            headers.append(("grpc-timeout", timeout))
        self.conn.send_headers(stream, headers, end_stream=not body and end)
        if body:
            self.conn.send_data(stream, body, end_stream=end)
        self._send()
        return stream

    def answers(self, streams: set[int], timeout_s: float) -> dict[int, Answer]:
        """Read until every stream in `streams` has ended or timeout_s passed."""
        found: dict[int, Answer] = {}
        deadline = time.monotonic() + timeout_s
        while streams - found.keys() and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in event.headers}
                    status = fields.get("grpc-status")
                    if status is not None:
                        message = fields.get("grpc-message", b"")
                        text = message.decode() if isinstance(message, bytes) else message
                        found[event.stream_id] = Answer(int(status), text)
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self._send()
        return found

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._send()
        finally:
            self.sock.close()


def call(port: int, method: str, body: bytes, timeout_s: float = 10.0) -> Answer:
    connection = RawConnection(port)
    try:
        stream = connection.start(method, body)
        return connection.answers({stream}, timeout_s).get(stream, Answer(None, ""))
    finally:
        connection.close()
