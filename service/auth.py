"""Bearer tokens: who may call, with what scope. Read from a file, re-read when it changes.

The file holds one token a line, optionally followed by its scopes; `#` starts a comment:

    # token                             scopes (default: translate)
    3f0c9d2e8b...                       translate
    a81f77c0d4...                       translate,admin

`translate` allows the Translator service and reflection; `admin` the Admin service (reload,
unload). A Kubernetes Secret mounted as a volume updates the file in place, so tokens rotate
without a restart: the file is stat-ed at most once a second and re-read when its modification
time, size or inode change. A file that cannot be read or holds no token keeps the previous
tokens (logged), so a half-written update never locks everyone out.

Only SHA-256 digests of the tokens are kept, and a presented token is compared with every one of
them with `hmac.compare_digest`, so neither the comparison's time nor an early exit tells a caller
how much of a token it guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCOPES = ("translate", "admin")
DEFAULT_SCOPES = frozenset({"translate"})
MIN_TOKEN_CHARS = 16  # shorter ones are guessable; refused when the file is read
RECHECK_S = 1.0  # how often the file's stat is looked at, at most


class TokenFileError(ValueError):
    """The token file is unreadable or malformed (at start-up this stops the server)."""


@dataclass(frozen=True)
class _Entry:
    digest: bytes  # sha256 of the token
    scopes: frozenset[str]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse_tokens(text: str, source: str = "token file") -> list[_Entry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        token, *rest = line.split()
        if len(rest) > 1:
            raise TokenFileError(f"{source} line {number}: expected 'TOKEN [SCOPE,SCOPE]'")
        scopes = frozenset(s for s in (rest[0].split(",") if rest else ()) if s) or DEFAULT_SCOPES
        unknown = scopes - set(SCOPES)
        if unknown:
            raise TokenFileError(
                f"{source} line {number}: unknown scope(s) {sorted(unknown)}; known: {SCOPES}"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenFileError(
                f"{source} line {number}: a token needs at least {MIN_TOKEN_CHARS} characters"
            )
        entries.append(_Entry(_digest(token), scopes))
    if not entries:
        raise TokenFileError(f"{source} holds no token")
    return entries


class TokenFile:
    """The tokens of one file; `scopes(token)` is what a caller presenting `token` may do."""

    def __init__(self, path: Path, clock=time.monotonic):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = parse_tokens(self._read(), str(self.path))  # raises: fatal at start-up
        self._stat = self._stat_key()
        self._checked = clock()

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"cannot read token file {self.path}: {exc}") from exc

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < RECHECK_S:
            return
        with self._lock:
            if now - self._checked < RECHECK_S:
                return
            self._checked = now
            key = self._stat_key()
            if key == self._stat:
                return
            self._stat = key
            try:
                self._entries = parse_tokens(self._read(), str(self.path))
            except TokenFileError as exc:
                log.error("keeping the previous %d tokens: %s", len(self._entries), exc)
                return
            log.info("token file %s re-read: %d tokens", self.path, len(self._entries))

    def scopes(self, token: str) -> frozenset[str]:
        """The scopes of `token`; empty when it is not a valid token."""
        self._refresh()
        digest = _digest(token)
        found: frozenset[str] = frozenset()
        for entry in self._entries:  # no early exit: every entry is compared
            if hmac.compare_digest(digest, entry.digest):
                found = entry.scopes
        return found


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` header, or None."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
