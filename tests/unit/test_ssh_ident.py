"""The client identification pre-stage: OpenSSH's rules and its plain-text answers."""

from __future__ import annotations

import pytest

from dynapot.services.ssh_ident import INVALID, MISMATCH, IdentReader


def judge(*chunks: bytes):
    reader = IdentReader()
    result = None
    for chunk in chunks:
        result = reader.feed(chunk)
    return result


@pytest.mark.parametrize(
    "line",
    [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        b"SSH-2.0-Client\n",  # LF alone is fine
        b"SSH-1.99-OpenSSH_9.2\r\n",  # 1.99 means 2.0 too
        b"SSH-2.0-" + b"A" * 300 + b"\r\n",  # sshd takes up to 8,192 bytes
    ],
)
def test_identifications_sshd_accepts(line: bytes) -> None:
    result = judge(line + b"\x00\x00\x01\x0c")
    assert (result.status, result.line, result.rest) == ("ok", line, b"\x00\x00\x01\x0c")


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"SSH-1.5-Client\r\n", MISMATCH),
        (b"SSH-3.0-Client\r\n", MISMATCH),
        (b"SSH-2.0\r\n", INVALID),
        (b"SSH-2.0-\r\n", INVALID),
        (b"\r\n", INVALID),
        (b"HELLO\r\n", INVALID),
        (b"GET / HTTP/1.0\r\n\r\n", INVALID),
        (b"SSH-2.0-Cli\x00ent\r\n", INVALID),
        (b"SSH-2.0-Client\rX\n", INVALID),  # CR not followed by LF
        (b"junk\r\nSSH-2.0-Client\r\n", INVALID),  # no lines before the identification from a client
    ],
)
def test_malformed_identifications_get_sshds_words(data: bytes, reply: bytes) -> None:
    result = judge(data)
    assert (result.status in ("invalid", "mismatch"), result.reply) == (True, reply)


def test_byte_by_byte_and_bounded() -> None:
    reader = IdentReader()
    line = b"SSH-2.0-Slow\r\n"
    results = [reader.feed(line[i : i + 1]) for i in range(len(line))]
    assert [r.status for r in results[:-1]] == ["more"] * (len(line) - 1) and results[-1].status == "ok"
    endless = IdentReader()
    assert endless.feed(b"SSH-2.0-" + b"x" * 9000).reply == INVALID  # no line end: over 8,192 bytes


def test_known_scanners_get_silence() -> None:
    assert judge(b"SSH-2.0-Probe-Scanner\r\n").status == "silent"
    assert judge(b"SSH-2.0-SSH_Version_Mapper\r\n").status == "silent"


def test_a_5000_digit_version_is_invalid_not_a_crash() -> None:
    assert judge(b"SSH-" + b"2" * 5000 + b".0-x\r\n").reply == INVALID
