"""TLS for the gRPC port: a certificate and key from files, optionally mutual TLS (a client CA;
a client without a certificate it signed is refused in the handshake), and rotation without a
restart.

gRPC asks `_CertificateFiles.fetch` before every handshake; it re-reads the files when their
modification time, size or inode changed (cert-manager renews a Kubernetes Secret by swapping the
volume's symlinks, which changes all three) and hands gRPC the new pair. New connections use it;
open connections keep the one they were made with. A pair that does not load (a half-written
renewal, a key that does not match its certificate) is refused with a logged error and the
previous pair stays in use, so a bad renewal never takes the port down.

Clients: `channel_credentials(...)`, used by service/client.py, service/healthcheck.py and
`s2s translate`.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


class TlsError(ValueError):
    """The certificate, key or CA files cannot be used (at start-up this stops the server)."""


@dataclass(frozen=True)
class TlsConfig:
    cert: Path  # the server's certificate chain, PEM
    key: Path  # its private key, PEM (unencrypted: the process has no one to ask for a passphrase)
    client_ca: Path | None = None  # CA bundle, PEM: set = mutual TLS, clients must present a cert it signed


def _read(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc}") from exc
    if b"-----BEGIN" not in data:
        raise TlsError(f"the {what} {path} is not PEM")
    return data


def _check_pair(cert: Path, key: Path) -> None:
    """Fail unless `key` is the private key of `cert` (what gRPC would only find per handshake)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"the certificate {cert} and key {key} do not load as a pair: {exc}") from exc


def _stat_key(*paths: Path | None) -> tuple:
    key = []
    for path in paths:
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            key.append(None)
            continue
        key.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(key)


class _CertificateFiles:
    def __init__(self, config: TlsConfig):
        self.config = config
        self._lock = threading.Lock()  # gRPC may call fetch from several of its threads
        self._stat = _stat_key(config.cert, config.key, config.client_ca)
        self.current = self._load()  # raises TlsError: fatal at start-up

    def _load(self) -> grpc.ServerCertificateConfiguration:
        c = self.config
        cert, key = _read(c.cert, "certificate"), _read(c.key, "private key")
        _check_pair(c.cert, c.key)
        ca = _read(c.client_ca, "client CA bundle") if c.client_ca else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake question: a new configuration, or None to keep the current one."""
        c = self.config
        with self._lock:
            stat = _stat_key(c.cert, c.key, c.client_ca)
            if stat == self._stat:
                return None
            self._stat = stat
            try:
                self.current = self._load()
            except TlsError as exc:
                log.error("keeping the previous certificate: %s", exc)
                return None
        log.info("TLS certificate re-read from %s", c.cert)
        return self.current


def server_credentials(config: TlsConfig) -> grpc.ServerCredentials:
    files = _CertificateFiles(config)
    return grpc.dynamic_ssl_server_credentials(
        files.current, files.fetch, require_client_authentication=config.client_ca is not None
    )


def channel_credentials(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials for a client: `ca` verifies the server (None: the system's roots); `cert`
    and `key` (both or neither) are the client's own, for mutual TLS."""
    if (cert is None) != (key is None):
        raise TlsError("a client certificate needs its key, and a key its certificate")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "CA bundle") if ca else None,
        private_key=_read(key, "private key") if key else None,
        certificate_chain=_read(cert, "certificate") if cert else None,
    )
