"""service/auth.py: the token file's format, scopes, re-reading and the bearer header."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.auth import TokenFile, TokenFileError, bearer_token, parse_tokens

A, B = "a" * 20, "b" * 24


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    return path


def test_scopes_default_to_translate_and_unknown_tokens_have_none(tmp_path: Path) -> None:
    tokens = TokenFile(_file(tmp_path, f"# comment\n{A}\n\n{B} translate,admin  # trailing comment\n"))
    assert tokens.scopes(A) == {"translate"}
    assert tokens.scopes(B) == {"translate", "admin"}
    assert tokens.scopes("c" * 20) == frozenset()
    assert tokens.scopes(A[:-1]) == frozenset()  # a prefix is not the token
    assert tokens.scopes("") == frozenset()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no token"),
        ("# only a comment\n", "holds no token"),
        ("short\n", "at least 16 characters"),
        (f"{A} root\n", "unknown scope"),
        (f"{A} translate admin\n", r"expected 'TOKEN \[SCOPE,SCOPE\]'"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(TokenFileError, match=problem):
        TokenFile(_file(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenFile(tmp_path / "absent")


def test_the_file_is_re_read_when_it_changes_and_a_broken_rewrite_keeps_the_old_tokens(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = _file(tmp_path, f"{A}\n")
    tokens = TokenFile(path, clock=clock)
    path.write_text(f"{B}\n")
    assert tokens.scopes(A)  # not looked at again within a second
    clock.now = 1.5
    assert tokens.scopes(B) and not tokens.scopes(A)
    path.write_text("x\n")  # a half-written or wrong file
    os.utime(path, ns=(1, 1))
    clock.now = 3.0
    assert tokens.scopes(B)  # kept


def test_only_sha256_digests_are_kept() -> None:
    entries = parse_tokens(f"{A}\n")
    assert all(A.encode() not in entry.digest for entry in entries)
    assert len(entries[0].digest) == 32


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", f"Bearer {A}"),), A),
        ((("authorization", f"bearer   {A} "),), A),
        ((("x-other", "1"), ("authorization", f"Bearer {A}")), A),
        ((("authorization", f"Basic {A}"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization-bin", b"\x00"),), None),
        ((), None),
        (None, None),
    ],
)
def test_bearer_token_reads_only_the_bearer_scheme(metadata, token) -> None:
    assert bearer_token(metadata) == token
