"""Turn a probe's raw answer into comparable text, removing only what is truly random.

Pure functions, one per protocol: an answer (the bytes a server sent, or a client's log) in,
printable text out. What is removed or replaced, and nothing else:

- the target's own address and host name (two machines legitimately differ there): `<ip>`, `<host>`;
- SSH: the KEXINIT cookie and the packet padding (random by the protocol), host key fingerprints;
- HTTP: the values of Date, Last-Modified, ETag and Content-Length, the total of Content-Range,
  the order of Allow (Apache's differs per process), the body of a 2xx answer and of an HTTP/0.9
  page (site content, not server software); error pages are compared in full;
- SMTP: Postfix queue ids; FTP: the passive port; MySQL: thread id and scramble;
- timings are put into coarse buckets (`delay_bucket`); the realism suite's timing section
  compares them finely, against the real daemon's own spread (`dynapot.lab.timing_stats`).
"""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

__all__ = [
    "delay_bucket",
    "describe",
    "escape",
    "host_names",
    "http_answer",
    "mysql_answer",
    "plain_answer",
    "ssh_answer",
    "ssh_client_log",
    "ssh_kexinit_fields",
]

LIMIT = 4000  # characters of normalised text kept per answer (a KEXINIT takes ~1,100)

KEXINIT_FIELDS = (
    "kex",
    "hostkey",
    "enc_c2s",
    "enc_s2c",
    "mac_c2s",
    "mac_s2c",
    "comp_c2s",
    "comp_s2c",
    "lang_c2s",
    "lang_s2c",
)
_SSH_MSG = {1: "DISCONNECT", 2: "IGNORE", 3: "UNIMPLEMENTED", 4: "DEBUG", 20: "KEXINIT", 31: "KEX_REPLY"}


def escape(data: bytes) -> str:
    """Bytes as printable text: printable ASCII kept, CR/LF as \\r \\n, anything else as \\xNN."""
    out = []
    for byte in data:
        if byte == 0x0D:
            out.append("\\r")
        elif byte == 0x0A:
            out.append("\\n")
        elif byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _clip(text: str) -> str:
    return text if len(text) <= LIMIT else text[:LIMIT] + f"...(+{len(text) - LIMIT})"


def _identity(text: str, ip: str, names: tuple[str, ...]) -> str:
    text = text.replace(ip, "<ip>")
    for name in sorted((n for n in names if n), key=len, reverse=True):
        # After a non-alphanumeric, or after an escape ("\\r" before a telnet prompt's name).
        text = re.sub(rf"(?:(?<![A-Za-z0-9])|(?<=\\[rnt])){re.escape(name)}(?![A-Za-z0-9-])", "<host>", text)
    return text


def plain_answer(data: bytes, ip: str, names: tuple[str, ...] = ()) -> str:
    """A line protocol's answer (FTP, SMTP, telnet): escaped, with the random fields replaced."""
    text = _identity(escape(data), ip, names)
    text = re.sub(r"\(\d+,\d+,\d+,\d+,\d+,\d+\)", "(<pasv>)", text)  # FTP PASV address and port
    text = re.sub(r"\(\|\|\|\d+\|\)", "(|||<port>|)", text)  # FTP EPSV port
    text = re.sub(r"queued as [0-9A-Za-z]+", "queued as <id>", text)  # Postfix queue id
    return _clip(text)


# -- SSH ---------------------------------------------------------------------------------------------


def ssh_kexinit_fields(payload: bytes) -> dict[str, str] | None:
    """The ten name-lists of a KEXINIT payload (message byte first), or None if it is not one."""
    if len(payload) < 17 or payload[0] != 20:
        return None
    pos, fields = 17, {}
    for name in KEXINIT_FIELDS:
        if pos + 4 > len(payload):
            return None
        (size,) = struct.unpack_from(">I", payload, pos)
        pos += 4
        if pos + size > len(payload):
            return None
        fields[name] = payload[pos : pos + size].decode("ascii", "replace")
        pos += size
    return fields


def _ssh_packet(payload: bytes) -> str:
    if not payload:
        return "packet(empty)"
    kind = payload[0]
    if kind == 20 and (fields := ssh_kexinit_fields(payload)) is not None:
        return "KEXINIT " + " ".join(f"{k}={v}" for k, v in fields.items())
    if kind == 1 and len(payload) >= 9:
        (reason,) = struct.unpack_from(">I", payload, 1)
        (size,) = struct.unpack_from(">I", payload, 5)
        return f"DISCONNECT {reason} {escape(payload[9 : 9 + size])}"
    return f"{_SSH_MSG.get(kind, 'msg')}({kind}) {len(payload)} bytes"


def ssh_answer(data: bytes, ip: str, names: tuple[str, ...] = ()) -> str:
    """An SSH server's bytes: text lines as they are, then each binary packet summarised
    (KEXINIT by its name-lists, DISCONNECT by reason and text) without cookie or padding."""
    parts, rest = [], data
    # Lines before and including the identification string (RFC 4253 4.2).
    while rest and b"\n" in rest[:1024] and not _looks_binary(rest):
        line, _, rest = rest.partition(b"\n")
        parts.append(escape(line + b"\n"))
        if line.startswith(b"SSH-"):
            break
    while len(rest) >= 5:
        (length,) = struct.unpack_from(">I", rest)
        padding = rest[4]
        if length < 5 or length > 35000 or len(rest) < 4 + length:
            break
        parts.append(_ssh_packet(rest[5 : 4 + length - padding]))
        rest = rest[4 + length :]
    if rest:
        parts.append(f"bytes({escape(rest[:64])}{'...' if len(rest) > 64 else ''})")
    return _clip(_identity(" | ".join(parts), ip, names))


def _looks_binary(data: bytes) -> bool:
    head = data[:5]
    return len(head) == 5 and head[0] == 0 and not data.startswith(b"SSH-")


_CLIENT_LINE = re.compile(
    r"(remote software version .*|kex: algorithm: .*|kex: host key algorithm: .*"
    r"|kex: server->client .*|kex: client->server .*|Server host key: \S+"
    r"|Authentications that can continue: .*|no matching .*|Unable to negotiate.*"
    r"|Connection closed by .*|Connection reset by .*|kex_exchange_identification: .*"
    r"|Permission denied .*|banner exchange: .*|Bad packet length.*|ssh_dispatch_run_fatal: .*)"
)


def ssh_client_log(stderr: str, ip: str, names: tuple[str, ...] = ()) -> str:
    """The lines of `ssh -v` output that describe the server, in order, ports and fingerprints out."""
    found = []
    for line in stderr.splitlines():
        match = _CLIENT_LINE.search(line)
        if match:
            text = re.sub(r" port \d+", " port <port>", match.group(1).strip())
            found.append(text)
    return _clip(_identity(" | ".join(found), ip, names))


def delay_bucket(seconds: float | None) -> str:
    """A delay in coarse buckets: the difference between 10 ms and 2 s is a tell, 1.9 and 2.3 s not."""
    if seconds is None:
        return "none"
    for bound, label in ((0.3, "<0.3s"), (1.0, "0.3-1s"), (4.0, "1-4s"), (10.0, "4-10s")):
        if seconds < bound:
            return label
    return ">10s"


# -- HTTP --------------------------------------------------------------------------------------------

_RANDOM_HEADERS = {"date", "last-modified", "etag"}


def http_answer(data: bytes, ip: str, names: tuple[str, ...] = ()) -> str:
    """HTTP responses one after another: status line, headers (random values replaced),
    bodies of errors in full and of successes replaced by `<body>`; anything else escaped."""
    parts, rest = [], data
    while rest:
        if not rest.startswith(b"HTTP/"):
            # No status line: an HTTP/0.9 answer (a page: site content, unless an error page) or junk.
            text = escape(rest[:600])
            parts.append(
                "raw:"
                + (
                    text
                    if re.search(r"<title>\d{3} ", text) or not text.lstrip("\\n").startswith("<")
                    else "<page>"
                )
            )
            break
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            parts.append("partial-head:" + escape(head[:600]))
            break
        lines = head.split(b"\r\n")
        status = lines[0]
        code = status.split(b" ", 2)[1] if len(status.split(b" ")) > 1 else b""
        headers, length, chunked = [], None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower().decode("latin-1")
            value = value.strip()
            if key == "content-length" and value.isdigit():
                length = int(value)
            if key == "transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            shown = "<v>" if key in _RANDOM_HEADERS else escape(value)
            if key == "allow":  # Apache lists its methods in hash order, different per process
                shown = ",".join(sorted(shown.split(",")))
            if key == "content-range":  # the total is the page's size: site content
                shown = re.sub(r"/\d+$", "/<n>", shown)
            if key == "content-length":
                shown = (
                    "<n>"  # follows the body: a 2xx body is site content, an error page holds the host name
                )
            headers.append(f"{escape(name)}: {shown}")
        if length is None and not chunked:
            body, rest = rest, b""
        elif length is None:
            end = rest.find(b"\r\n0\r\n\r\n")
            body, rest = (rest, b"") if end < 0 else (rest[: end + 7], rest[end + 7 :])
        else:
            body, rest = rest[:length], rest[length:]
        shown_body = "<body>" if code.startswith(b"2") and body else escape(body[:800])
        parts.append(f"{escape(status)} [{'; '.join(headers)}] {shown_body}")
    return _clip(_identity(" || ".join(parts), ip, names))


# -- MySQL -------------------------------------------------------------------------------------------


def _mysql_packets(data: bytes) -> list[tuple[int, bytes]]:
    packets, pos = [], 0
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "little")
        seq = data[pos + 3]
        packets.append((seq, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    if pos < len(data):
        packets.append((-1, data[pos:]))
    return packets


def _mysql_greeting(body: bytes) -> str:
    try:
        proto = body[0]
        end = body.index(b"\0", 1)
        version = body[1:end].decode("latin-1")
        pos = end + 1 + 4  # thread id: random
        pos += 8 + 1  # scramble part 1, filler
        caps_lo = int.from_bytes(body[pos : pos + 2], "little")
        charset = body[pos + 2]
        status = int.from_bytes(body[pos + 3 : pos + 5], "little")
        caps_hi = int.from_bytes(body[pos + 5 : pos + 7], "little")
        auth_len = body[pos + 7]
        tail = body[pos + 8 :]
        plugin = tail.rsplit(b"\0", 2)[-2] if tail.count(b"\0") >= 2 else tail
        extra = tail[:10].hex()  # reserved bytes (MariaDB puts its extended capabilities here)
        return (
            f"greeting proto={proto} version={escape(version.encode())} caps={caps_hi:04x}{caps_lo:04x} "
            f"charset={charset} status={status:04x} auth_len={auth_len} reserved={extra} "
            f"plugin={escape(plugin[-40:])}"
        )
    except (IndexError, ValueError):
        return "greeting? " + escape(body[:200])


def mysql_answer(data: bytes, ip: str, names: tuple[str, ...] = (), greeted: bool = False) -> str:
    """MySQL packets: the greeting by its fields (thread id and scramble out), errors by code,
    SQLSTATE and message, others by sequence number and size. `greeted`: the first packet is
    not the greeting."""
    parts = []
    for index, (seq, body) in enumerate(_mysql_packets(data)):
        if seq < 0:
            parts.append("trailing:" + escape(body[:100]))
        elif body[:1] == b"\xff" and len(body) >= 3:
            code = int.from_bytes(body[1:3], "little")
            rest = body[3:]
            state = rest[1:6].decode("latin-1") if rest[:1] == b"#" else ""
            message = rest[6:] if state else rest
            parts.append(f"#{seq} ERR {code} {state or '-'} {escape(message)}")
        elif index == 0 and not greeted and seq == 0 and body[:1] == b"\x0a":
            parts.append(f"#{seq} " + _mysql_greeting(body))
        elif body[:1] == b"\x00":
            parts.append(f"#{seq} OK")
        elif body[:1] == b"\xfe":
            parts.append(f"#{seq} EOF/switch {escape(body[:60])}")
        else:
            parts.append(f"#{seq} data {len(body)} bytes")
    return _clip(_identity(" | ".join(parts), ip, names))


# -- a probe's result as a whole ---------------------------------------------------------------------

_NAME_PATTERNS = (
    re.compile(rb"^220[ -]([A-Za-z0-9][A-Za-z0-9.-]{0,62}) ", re.M),  # SMTP and FTP greetings
    re.compile(rb"([A-Za-z0-9][A-Za-z0-9.-]{0,62}) login: "),  # telnet prompt
    re.compile(rb"Server at ([A-Za-z0-9][A-Za-z0-9.-]{0,62}) Port"),  # Apache error pages
)


def host_names(results: list[dict[str, Any]]) -> tuple[str, ...]:
    """The names a host calls itself in its greetings (SMTP, telnet, Apache), for `<host>`."""
    names: set[str] = set()
    for result in results:
        if result.get("probe") not in ("banner", "negotiation", "not-found"):
            continue
        for step in result.get("steps", ()):
            data = base64.b64decode(step)
            for pattern in _NAME_PATTERNS:
                for match in pattern.finditer(data):
                    name = match.group(1).decode("ascii")
                    if name not in ("ESMTP", "FTP", "(vsFTPd"):
                        names.add(name)
                        names.add(name.split(".")[0])
    return tuple(sorted(names))


_STEP_NORMALISERS = {
    "ssh": ssh_answer,
    "ftp": plain_answer,
    "telnet": plain_answer,
    "smtp": plain_answer,
    "http": http_answer,
}


def describe(result: dict[str, Any], ip: str, names: tuple[str, ...] = ()) -> str:
    """One probe's result (from `dynapot.lab.probe_run`) as normalised text to compare."""
    kind, protocol = result.get("kind"), result.get("protocol", "")
    if kind == "ssh-client":
        return f"{ssh_client_log(result.get('log', ''), ip, names)} [{result.get('end')}]"
    if kind == "ssh-delay":
        return f"{result.get('end')} delay {delay_bucket(result.get('delay'))}"
    steps = [base64.b64decode(s) for s in result.get("steps", ())]
    if protocol == "mysql":
        texts = [mysql_answer(s, ip, names, greeted=i > 0) for i, s in enumerate(steps)]
    else:
        texts = [_STEP_NORMALISERS.get(protocol, plain_answer)(s, ip, names) for s in steps]
    return " >> ".join(t or "(nothing)" for t in texts) + f" [{result.get('end')}]"
