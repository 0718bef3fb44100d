"""The SMB emulator: its codecs and state machine without sockets, then nmap and smbclient over loopback.

The nmap tests bind port 445/139 on a random 127.x.y.z address (smb-os-discovery only looks at
those ports; its `smbport` argument breaks the script's own output code), so they need root and
skip without it. Hashes reported for logons are checked the way a cracker would: recomputed from
the password with MD4 and HMAC-MD5.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
from loopback import needs_nmap

from dynapot.services import netbios_ns, smb
from dynapot.services import smb_messages as m
from dynapot.services.contract import ConnectionInfo
from dynapot.services.identity import identity_for
from dynapot.services.smb import Reply, SmbConnection

pytestmark = pytest.mark.timeout(60)

needs_smbclient = pytest.mark.skipif(
    shutil.which("smbclient") is None and not os.environ.get("CI"),
    reason="smbclient is not installed (set CI=1 to make this a failure)",
)


# ---------------------------------------------------------------------------------------------
# A cracker's view of NTLM: MD4 (RFC 1320; hashlib has none under OpenSSL 3) and NTLMv2.


def md4(data: bytes) -> bytes:
    mask = 0xFFFFFFFF

    def rol(value: int, shift: int) -> int:
        value &= mask
        return ((value << shift) | (value >> (32 - shift))) & mask

    message = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for block in range(0, len(message), 64):
        x = struct.unpack("<16I", message[block : block + 64])
        aa, bb, cc, dd = a, b, c, d
        for k in (0, 4, 8, 12):
            a = rol(a + ((b & c) | (~b & d)) + x[k], 3)
            d = rol(d + ((a & b) | (~a & c)) + x[k + 1], 7)
            c = rol(c + ((d & a) | (~d & b)) + x[k + 2], 11)
            b = rol(b + ((c & d) | (~c & a)) + x[k + 3], 19)
        for k in (0, 1, 2, 3):
            a = rol(a + ((b & c) | (b & d) | (c & d)) + x[k] + 0x5A827999, 3)
            d = rol(d + ((a & b) | (a & c) | (b & c)) + x[k + 4] + 0x5A827999, 5)
            c = rol(c + ((d & a) | (d & b) | (a & b)) + x[k + 8] + 0x5A827999, 9)
            b = rol(b + ((c & d) | (c & a) | (d & a)) + x[k + 12] + 0x5A827999, 13)
        for k in (0, 2, 1, 3):
            a = rol(a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1, 3)
            d = rol(d + (a ^ b ^ c) + x[k + 8] + 0x6ED9EBA1, 9)
            c = rol(c + (d ^ a ^ b) + x[k + 4] + 0x6ED9EBA1, 11)
            b = rol(b + (c ^ d ^ a) + x[k + 12] + 0x6ED9EBA1, 15)
        a, b, c, d = (a + aa) & mask, (b + bb) & mask, (c + cc) & mask, (d + dd) & mask
    return struct.pack("<4I", a, b, c, d)


def ntowf_v2(user: str, domain: str, password: str) -> bytes:
    nt_hash = md4(password.encode("utf-16-le"))
    return hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), "md5").digest()


def ntlmv2_line_matches(line: str, password: str) -> bool:
    """Does a hashcat 5600 line (user::domain:challenge:ntproofstr:blob) come from `password`?"""
    user, empty, domain, challenge, proof, blob = line.split(":")
    assert empty == ""
    key = ntowf_v2(user, domain, password)
    return hmac.new(key, bytes.fromhex(challenge + blob), "md5").hexdigest() == proof


def parse_challenge(message: bytes) -> tuple[int, bytes, dict[int, bytes], bytes]:
    """(flags, server challenge, AV pairs, VERSION) of an NTLMSSP CHALLENGE, parsed the client's way."""
    signature, kind, _, _, _, flags, challenge, _, info_len, _, info_off = struct.unpack_from(
        "<8sIHHII8s8sHHI", message
    )
    assert signature == b"NTLMSSP\0" and kind == 2
    pairs: dict[int, bytes] = {}
    info = message[info_off : info_off + info_len]
    pos = 0
    while pos + 4 <= len(info):
        av_id, length = struct.unpack_from("<HH", info, pos)
        pairs[av_id] = info[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if av_id == 0:
            break
    return flags, challenge, pairs, message[48:56]


def ntlm_negotiate(flags: int = 0xE2088297) -> bytes:
    return b"NTLMSSP\0" + struct.pack("<II", 1, flags) + b"\0" * 16


def ntlm_authenticate(challenge_message: bytes, user: str, domain: str, password: str) -> bytes:
    """An NTLMv2 AUTHENTICATE, as a Windows client builds it."""
    _, server_challenge, pairs, _ = parse_challenge(challenge_message)
    info = b"".join(struct.pack("<HH", k, len(v)) + v for k, v in pairs.items() if k != 0) + b"\0" * 4
    timestamp = pairs.get(7, struct.pack("<Q", m.filetime()))
    blob = b"\x01\x01" + b"\0" * 6 + timestamp + os.urandom(8) + b"\0" * 4 + info + b"\0" * 4
    proof = hmac.new(ntowf_v2(user, domain, password), server_challenge + blob, "md5").digest()
    nt = proof + blob
    lm = b"\0" * 24
    fields = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"), "KALI".encode("utf-16-le")]
    offset = 64
    header = b"NTLMSSP\0" + struct.pack("<I", 3)
    payload = b""
    for value in [*fields, b""]:
        header += struct.pack("<HHI", len(value), len(value), offset)
        offset += len(value)
        payload += value
    return header + struct.pack("<I", 0xE2088215) + payload


def spnego_init_token(token: bytes) -> bytes:
    mechs = m.der(0xA0, m.der(0x30, m.der(0x06, m.OID_NTLMSSP)))
    return m.der(
        0x60, m.der(0x06, m.OID_SPNEGO) + m.der(0xA0, m.der(0x30, mechs + m.der(0xA2, m.der(0x04, token))))
    )


def spnego_resp_token(token: bytes) -> bytes:
    return m.der(0xA1, m.der(0x30, m.der(0xA2, m.der(0x04, token))))


def test_md4_matches_the_rfc_vectors() -> None:
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4("password".encode("utf-16-le")).hex() == "8846f7eaee8fb117ad06bdd830b7586c"


# ---------------------------------------------------------------------------------------------
# Who the hosts are


@pytest.mark.parametrize(
    ("personality", "native_os", "lanman", "smb2", "version"),
    [
        ("Microsoft Windows XP SP3", "Windows 5.1", "Windows 2000 LAN Manager", 0, (5, 1, 2600)),
        ("Microsoft Windows 2000 SP4", "Windows 5.0", "Windows 2000 LAN Manager", 0, (5, 0, 2195)),
        (
            "Microsoft Windows Server 2003 SP2",
            "Windows Server 2003 3790 Service Pack 2",
            "Windows Server 2003 5.2",
            0,
            (5, 2, 3790),
        ),
        (
            "Microsoft Windows 7 Professional SP1",
            "Windows 7 Professional 7601 Service Pack 1",
            "Windows 7 Professional 6.1",
            0x0210,
            (6, 1, 7601),
        ),
        (
            "Microsoft Windows Vista SP2, Windows 7, or Windows 7 SP1",
            r"Windows Vista \(TM\) \w[\w ]* 6002 Service Pack 2",
            r"Windows Vista \(TM\) .* 6\.0",
            0x0202,
            (6, 0, 6002),
        ),
        (
            "Microsoft Windows Server 2008 R2 SP1",
            r"Windows Server 2008 R2 (Standard|Datacenter) 7601 Service Pack 1",
            r"Windows Server 2008 R2 \w+ 6\.1",
            0x0210,
            (6, 1, 7601),
        ),
        (
            "Microsoft Windows 8.1 Update 1",
            r"Windows 8\.1 \w+ 9600",
            r"Windows 8\.1 \w+ 6\.3",
            0x0302,
            (6, 3, 9600),
        ),
        (
            "Microsoft Windows Server 2012 R2",
            r"Windows Server 2012 R2 \w+ 9600",
            r".* 6\.3",
            0x0302,
            (6, 3, 9600),
        ),
        (
            "Microsoft Windows 10 1607",
            r"Windows 10 \w+ 14393",
            r"Windows 10 \w+ 6\.3",
            0x0311,
            (10, 0, 14393),
        ),
        (
            "Microsoft Windows Server 2019",
            r"Windows Server 2019 \w+ 17763",
            r".* 6\.3",
            0x0311,
            (10, 0, 17763),
        ),
        (None, r"Windows 10 \w+ 19045", r".* 6\.3", 0x0311, (10, 0, 19045)),
        ("Linux 4.15 - 5.8", "Windows 6.1", r"Samba 4\.\d+\.\d+.*", 0x0311, (6, 1, 0)),
    ],
)
def test_profiles_follow_the_personality(personality, native_os, lanman, smb2, version) -> None:
    profile = m.profile_for(personality, rng=random.Random(7))
    assert re.fullmatch(native_os, profile.native_os), profile.native_os
    assert re.fullmatch(lanman, profile.native_lanman), profile.native_lanman
    assert profile.smb2_max == smb2 and profile.version == version


def test_without_a_personality_the_product_decides() -> None:
    assert m.profile_for(None, "Microsoft Windows XP microsoft-ds").key == "xp"
    assert m.profile_for(None, "Microsoft Windows Server 2008 R2 - 2012 microsoft-ds").key == "2008r2"
    assert m.profile_for(None, "Samba smbd", "3.X - 4.X").samba
    assert m.profile_for(None).key == "10"


def test_samba_refuses_smb1_but_samba_3_speaks_it() -> None:
    modern = m.profile_for("Linux 5.4", "Samba smbd", "4.6.2")
    assert not modern.smb1 and modern.native_lanman == "Samba 4.6.2"
    old = m.profile_for("Linux 2.6.32", "Samba smbd", "3.6.25")
    assert old.smb1 and old.native_os == "Unix" and old.smb2_max == 0


def test_hosts_have_their_own_names_and_share_their_network() -> None:
    windows7 = "Microsoft Windows 7 SP1"
    hosts = [identity_for(f"198.18.4.{i}", windows7) for i in range(10, 40)]
    assert len({h.computer for h in hosts}) >= 27  # a clash now and then, as on real networks
    assert len({h.server_guid for h in hosts}) == 30
    assert len({(h.netbios_domain, h.dns_domain) for h in hosts}) == 1  # one LAN, one workgroup or domain
    assert all(h.computer == h.computer.upper() and len(h.computer) <= 15 for h in hosts)
    again = identity_for("198.18.4.10", windows7)
    assert (again.computer, again.server_guid) == (hosts[0].computer, hosts[0].server_guid)
    assert abs(again.boot_time - hosts[0].boot_time) < 5  # the same boot, not a new one per connection
    networks = {identity_for(f"198.18.{n}.20", windows7).dns_domain is None for n in range(40)}
    assert networks == {True, False}  # some networks are workgroups, some are domains


def test_netbios_names_round_trip_and_garbage_is_refused() -> None:
    for name in ("*SMBSERVER", "WIN-ABC", "x"):
        decoded, suffix, used = m.netbios_name_decode(m.netbios_name_encode(name, 0x20) + b"tail")
        assert (decoded, suffix, used) == (name.upper(), 0x20, 34)
    for bad in (b"", b"\x20" + b"A" * 10, b"\x20" + b"Z" * 32 + b"\0", b"\x10" + b"A" * 33):
        with pytest.raises(m.MalformedMessage):
            m.netbios_name_decode(bad)


def test_ntlmssp_is_found_in_spnego_and_garbage_is_not() -> None:
    token = ntlm_negotiate()
    assert m.find_ntlmssp(token) == token
    assert m.find_ntlmssp(spnego_init_token(token)) == token
    assert m.find_ntlmssp(spnego_resp_token(token)) == token
    assert m.find_ntlmssp(b"\x60\x85garbage") is None
    assert m.find_ntlmssp(b"") is None
    assert m.find_ntlmssp(b"\x60\x03\x04\x01") is None


# ---------------------------------------------------------------------------------------------
# The state machine, message by message


def info(personality: str | None = "Microsoft Windows 7 SP1", dst: str = "198.18.0.20", dport: int = 445):
    return ConnectionInfo("tcp", "198.18.0.3", 40000, dst, dport, personality, "t")


def smb1_request(
    command: int, words: bytes = b"", data: bytes = b"", *, flags2: int = 0x4045, uid: int = 0
) -> bytes:
    header = struct.pack(
        "<4sBIBHH8sHHHHH", b"\xffSMB", command, 0, 0x18, flags2, 0, b"\0" * 8, 0, 0, 4242, uid, 7
    )
    return header + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data


def negotiate(*dialects: str, flags2: int = 0x4045) -> bytes:
    return smb1_request(0x72, data=b"".join(b"\x02" + d.encode() + b"\0" for d in dialects), flags2=flags2)


def setup_basic(
    user: str = "", domain: str = "", lm: bytes = b"", nt: bytes = b"", *, flags2: int = 0x4045
) -> bytes:
    words = struct.pack("<BBHHHHIHHII", 0xFF, 0, 0, 0xFFFF, 1, 1, 0, len(lm), len(nt), 0, 0x50)
    data = lm + nt + b"\0".join(s.encode() for s in (user, domain, "Nmap", "Native Lanman")) + b"\0"
    return smb1_request(0x73, words, data, flags2=flags2)


def setup_extended(blob: bytes, *, flags2: int = 0x4845, uid: int = 0) -> bytes:
    words = struct.pack("<BBHHHHIHII", 0xFF, 0, 0, 0xFFFF, 1, 1, 0, len(blob), 0, 0x80000050)
    return smb1_request(0x73, words, blob + b"Nmap\0Native Lanman\0\0", flags2=flags2, uid=uid)


def smb2_request(
    command: int, body: bytes, *, message_id: int = 1, session_id: int = 0, credits: int = 31
) -> bytes:
    header = struct.pack(
        "<4sHHIHHIIQIIQ16s",
        b"\xfeSMB",
        64,
        1,
        0,
        command,
        credits,
        0,
        0,
        message_id,
        0,
        0,
        session_id,
        b"\0" * 16,
    )
    return header + body


def smb2_negotiate(*dialects: int, contexts: list[tuple[int, bytes]] | None = None) -> bytes:
    fixed = 36 + 2 * len(dialects)
    context_offset = 64 + fixed + (-(64 + fixed) % 8)
    body = struct.pack(
        "<HHHHI16sIHH",
        36,
        len(dialects),
        1,
        0,
        0x7F,
        os.urandom(16),
        context_offset if contexts else 0,
        len(contexts or []),
        0,
    )
    body += struct.pack(f"<{len(dialects)}H", *dialects)
    if contexts:
        body += b"\0" * (context_offset - 64 - len(body))
        for index, (kind, data) in enumerate(contexts):
            item = struct.pack("<HHI", kind, len(data), 0) + data
            body += item + (b"\0" * (-len(item) % 8) if index < len(contexts) - 1 else b"")
    return smb2_request(0, body, message_id=0)


def smb2_setup(blob: bytes, *, message_id: int, session_id: int = 0) -> bytes:
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 1, 0, 64 + 24, len(blob), 0) + blob
    return smb2_request(1, body, message_id=message_id, session_id=session_id)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def __call__(self, kind, detail, data) -> None:
        self.events.append((kind, detail, data))

    def logins(self) -> list[dict]:
        return [e[2] for e in self.events if e[0] == "login"]


def one(reply: Reply) -> bytes:
    assert len(reply.messages) == 1, reply
    return reply.messages[0]


def test_nmap_basic_negotiate_and_anonymous_session_give_the_os() -> None:
    events = Recorder()
    conn = SmbConnection(info(), events)
    answer = m.smb1_parse(one(conn.receive(negotiate("NT LM 0.12", ""))))
    dialect, security, mpx, _, _, _, _, caps, _, _, key_length = struct.unpack("<HBHHIIIIQhB", answer.words)
    assert (answer.header.status, dialect, security, mpx, key_length) == (0, 0, 0x03, 10, 8)
    assert caps == 0x0001E3FC  # Windows 7 without extended security: "Microsoft Windows 7 - 10" in nmap
    names = answer.data[8:].decode("utf-16-le").split("\0")
    assert names[:2] == [conn.identity.netbios_domain, conn.identity.computer]

    reply = m.smb1_parse(one(conn.receive(setup_basic())))
    assert reply.header.status == m.STATUS_SUCCESS and reply.header.uid != 0
    strings = reply.data.split(b"\0")  # ASCII: nmap did not ask for Unicode
    assert [s.decode() for s in strings[:3]] == [
        conn.profile.native_os,
        conn.profile.native_lanman,
        conn.identity.netbios_domain,
    ]
    assert events.logins()[-1]["anonymous"] and events.logins()[-1]["accepted"]

    # A named user is refused, and its LM/NT responses are kept as a NetNTLMv1 line.
    reply = m.smb1_parse(one(conn.receive(setup_basic("admin", "CORP", b"\x11" * 24, b"\x22" * 24))))
    assert reply.header.status == m.STATUS_LOGON_FAILURE
    login = events.logins()[-1]
    assert login["hashcat_mode"] == 5500 and not login["accepted"]
    assert login["hash"] == f"admin::CORP:{'11' * 24}:{'22' * 24}:{conn.smb1_challenge.hex()}"


def test_extended_security_exchange_reports_a_crackable_ntlmv2_hash() -> None:
    events = Recorder()
    conn = SmbConnection(info("Microsoft Windows Server 2008 R2 SP1", dst="198.18.0.21"), events)
    answer = m.smb1_parse(one(conn.receive(negotiate("NT LM 0.12", flags2=0xC845))))
    assert answer.header.flags2 & m.SMB1_FLAGS2_EXTENDED_SECURITY
    guid, blob = answer.data[:16], answer.data[16:]
    assert guid == conn.identity.server_guid
    assert blob[4:10] == m.OID_SPNEGO and blob[1] < 0x80  # where nmap's smb.lua looks for SPNEGO

    reply = m.smb1_parse(
        one(conn.receive(setup_extended(spnego_init_token(ntlm_negotiate()), flags2=0xC845)))
    )
    assert reply.header.status == m.STATUS_MORE_PROCESSING_REQUIRED
    blob_length = struct.unpack_from("<H", reply.words, 6)[0]
    challenge = m.find_ntlmssp(reply.data[:blob_length])
    assert challenge is not None
    _, _, pairs, version = parse_challenge(challenge)
    assert pairs[1].decode("utf-16-le") == conn.identity.computer
    assert pairs[3].decode("utf-16-le") == conn.identity.fqdn
    assert abs(struct.unpack("<Q", pairs[7])[0] - m.filetime()) < 600 * 10**7  # the host's clock
    assert version[:4] == struct.pack("<BBH", 6, 1, 7601) and version[7] == 15
    # After the blob: NativeOS and NativeLanMan in Unicode, aligned.
    assert conn.profile.native_os.encode("utf-16-le") in reply.data

    domain = "CORP"
    token = ntlm_authenticate(challenge, "alice", domain, "Winter2024!")
    reply = m.smb1_parse(one(conn.receive(setup_extended(spnego_resp_token(token), uid=reply.header.uid))))
    assert reply.header.status == m.STATUS_LOGON_FAILURE
    login = events.logins()[-1]
    assert (login["user"], login["domain"], login["workstation"]) == ("alice", "CORP", "KALI")
    assert login["hashcat_mode"] == 5600 and login["hash_type"] == "NetNTLMv2"
    assert ntlmv2_line_matches(login["hash"], "Winter2024!")
    assert not ntlmv2_line_matches(login["hash"], "Winter2025!")


def test_smb2_is_offered_to_clients_that_ask_only_by_hosts_that_have_it() -> None:
    offer = ("NT LM 0.12", "SMB 2.002", "SMB 2.???")
    win7 = one(SmbConnection(info("Microsoft Windows 7 SP1"), Recorder()).receive(negotiate(*offer)))
    assert win7.startswith(b"\xfeSMB") and struct.unpack_from("<H", win7, 64 + 4)[0] == 0x02FF
    vista = one(SmbConnection(info("Microsoft Windows Vista SP2"), Recorder()).receive(negotiate(*offer)))
    assert struct.unpack_from("<H", vista, 64 + 4)[0] == 0x0202
    xp = one(SmbConnection(info("Microsoft Windows XP SP3"), Recorder()).receive(negotiate(*offer)))
    assert xp.startswith(b"\xffSMB") and m.smb1_parse(xp).words[:2] == b"\0\0"
    samba = SmbConnection(info("Linux 5.4"), Recorder()).receive(negotiate("NT LM 0.12"))
    assert samba.close and m.smb1_parse(one(samba)).words == b"\xff\xff"  # nmap: "Samba smbd 4.6.2"
    # XP never heard of SMB2: a bare SMB2 NEGOTIATE is dropped.
    assert SmbConnection(info("Microsoft Windows XP SP3"), Recorder()).receive(smb2_negotiate(0x0202)).close


def test_smb2_negotiate_picks_the_hosts_best_dialect_with_311_contexts() -> None:
    preauth = struct.pack("<HHH", 1, 32, 1) + os.urandom(32)
    ciphers = struct.pack("<HHH", 2, 1, 2)
    conn = SmbConnection(info("Microsoft Windows Server 2016"), Recorder())
    reply = one(
        conn.receive(
            smb2_negotiate(0x0202, 0x0210, 0x0300, 0x0302, 0x0311, contexts=[(1, preauth), (2, ciphers)])
        )
    )
    size, security, dialect, count = struct.unpack_from("<HHHH", reply, 64)
    assert (size, security, dialect, count) == (65, 1, 0x0311, 2)
    blob_offset, blob_length, context_offset = struct.unpack_from("<HHI", reply, 64 + 56)
    assert m.find_ntlmssp(reply[blob_offset : blob_offset + blob_length]) is None  # a hint, no token
    assert reply[blob_offset + 4 : blob_offset + 10] == m.OID_SPNEGO
    assert context_offset % 8 == 0
    kinds = []
    pos = context_offset
    for _ in range(count):
        kind, length = struct.unpack_from("<HH", reply, pos)
        kinds.append((kind, reply[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (-(8 + length) % 8)
    assert kinds[0][0] == 1 and len(kinds[0][1]) == 38
    assert kinds[1] == (2, struct.pack("<HH", 1, 2))  # AES-128-GCM chosen
    win7 = one(
        SmbConnection(info("Microsoft Windows 7 SP1"), Recorder()).receive(
            smb2_negotiate(0x0202, 0x0210, 0x0300)
        )
    )
    assert struct.unpack_from("<H", win7, 64 + 4)[0] == 0x0210
    none = SmbConnection(info("Microsoft Windows 7 SP1"), Recorder()).receive(smb2_negotiate(0x0300, 0x0311))
    assert none.close and struct.unpack_from("<I", one(none), 8)[0] == m.STATUS_NOT_SUPPORTED


def test_smb2_logon_then_everything_else_is_refused() -> None:
    events = Recorder()
    conn = SmbConnection(info("Microsoft Windows 10 1809"), events)
    conn.receive(smb2_negotiate(0x0202, 0x0311, contexts=[(1, struct.pack("<HHH", 1, 32, 1) + b"\0" * 32)]))
    reply = one(conn.receive(smb2_setup(spnego_init_token(ntlm_negotiate()), message_id=1)))
    status, session = struct.unpack_from("<I", reply, 8)[0], struct.unpack_from("<Q", reply, 40)[0]
    assert status == m.STATUS_MORE_PROCESSING_REQUIRED and session
    offset, length = struct.unpack_from("<HH", reply, 64 + 4)
    # Anonymous: a one-byte zero LM response and nothing else.
    anonymous = (
        b"NTLMSSP\0"
        + struct.pack("<I", 3)
        + struct.pack("<HHI", 1, 1, 64)
        + struct.pack("<HHI", 0, 0, 65) * 5
    )
    anonymous += struct.pack("<I", 0x00000A15) + b"\0"
    assert m.find_ntlmssp(reply[offset : offset + length]) is not None
    reply = one(conn.receive(smb2_setup(spnego_resp_token(anonymous), message_id=2, session_id=session)))
    assert struct.unpack_from("<I", reply, 8)[0] == m.STATUS_SUCCESS
    assert struct.unpack_from("<H", reply, 66)[0] == m.SMB2_SESSION_FLAG_IS_NULL
    path = "\\\\10.0.0.5\\C$".encode("utf-16-le")
    tree = smb2_request(3, struct.pack("<HHHH", 9, 0, 72, len(path)) + path, message_id=3, session_id=session)
    assert struct.unpack_from("<I", one(conn.receive(tree)), 8)[0] == m.STATUS_ACCESS_DENIED
    create = smb2_request(5, b"\x39\0" + b"\0" * 60, message_id=4, session_id=session)
    assert struct.unpack_from("<I", one(conn.receive(create)), 8)[0] == m.STATUS_NETWORK_NAME_DELETED
    echo = one(conn.receive(smb2_request(13, struct.pack("<HH", 4, 0), message_id=5)))
    assert struct.unpack_from("<I", echo, 8)[0] == 0
    assert ("request", "TREE_CONNECT \\\\10.0.0.5\\C$") in [e[:2] for e in events.events]
    assert events.logins()[-1]["anonymous"] and events.logins()[-1]["accepted"]


def _valid_conversations() -> list[list[bytes]]:
    challenge_flow = [
        negotiate("NT LM 0.12", flags2=0xC845),
        setup_extended(spnego_init_token(ntlm_negotiate()), flags2=0xC845),
    ]
    return [
        [negotiate("NT LM 0.12", ""), setup_basic("bob", "X", b"1" * 24, b"2" * 24)],
        challenge_flow,
        [
            smb2_negotiate(0x0202, 0x0311, contexts=[(1, b"\0" * 38), (2, struct.pack("<HHH", 2, 1, 2))]),
            smb2_setup(spnego_init_token(ntlm_negotiate()), message_id=1),
        ],
    ]


def test_garbage_truncation_and_bit_flips_never_raise() -> None:
    rng = random.Random(7)
    personalities = [
        "Microsoft Windows 7 SP1",
        "Microsoft Windows XP SP3",
        "Microsoft Windows Server 2019",
        "Linux 5.4",
    ]
    for conversation in _valid_conversations():
        for personality in personalities:
            for step in range(len(conversation)):
                message = conversation[step]
                variants = [message[:cut] for cut in range(0, len(message), 3)]
                for _ in range(60):
                    mutated = bytearray(message)
                    for _ in range(rng.randint(1, 6)):
                        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
                    variants.append(bytes(mutated))
                variants += [os.urandom(rng.randint(0, 300)) for _ in range(10)]
                for variant in variants:
                    conn = SmbConnection(info(personality), Recorder())
                    for earlier in conversation[:step]:
                        conn.receive(earlier)
                    assert isinstance(conn.receive(variant), Reply)


def test_event_flood_is_capped() -> None:
    events = Recorder()
    conn = SmbConnection(info("Microsoft Windows XP SP3"), events)
    conn.receive(negotiate("NT LM 0.12"))
    conn.receive(setup_basic())
    for _ in range(500):
        conn.receive(
            smb1_request(
                0x75, struct.pack("<BBHHH", 0xFF, 0, 0, 0, 1), b"\0\\\\X\\IPC$\0?????\0", uid=conn.uid
            )
        )
    assert len(events.events) == smb.MAX_EVENTS


# ---------------------------------------------------------------------------------------------
# Loopback: real clients against a kernel socket


class Listener:
    """An emulator behind a loopback listener, its event loop in a thread of its own."""

    def __init__(
        self, handler: Callable, personality: str | None, dst: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.events = Recorder()
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.tasks: set[asyncio.Task] = set()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            peer = writer.get_extra_info("peername")
            connection = ConnectionInfo("tcp", peer[0], peer[1], dst, self.port, personality, "t")
            try:
                await handler(reader, writer, connection, self.events)
            finally:
                self.tasks.discard(task)

        async def start() -> None:
            try:
                self.server = await asyncio.start_server(handle, host, port)
                self.port = self.server.sockets[0].getsockname()[1]
            except OSError as exc:
                failure.append(exc)
            ready.set()

        def run() -> None:
            self.loop.run_until_complete(start())
            if not failure:
                self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)
        if failure:
            self.thread.join(5)
            self.loop.close()
            raise failure[0]

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def listening(
    handler: Callable, personality: str | None, dst: str, host: str = "127.0.0.1", port: int = 0
) -> Iterator[Listener]:
    listener = Listener(handler, personality, dst, host, port)
    try:
        yield listener
    finally:
        listener.close()


def alias_address() -> str:
    """A random loopback address of its own, so that binding a well-known port collides with nothing."""
    rng = random.SystemRandom()
    return f"127.{rng.randint(16, 250)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


@contextlib.contextmanager
def well_known(
    handler: Callable, personality: str | None, dst: str, host: str, port: int
) -> Iterator[Listener]:
    try:
        listener = Listener(handler, personality, dst, host, port)
    except PermissionError:
        pytest.skip(f"binding port {port} needs root")
    try:
        yield listener
    finally:
        listener.close()


def domain_member_address() -> str:
    return next(
        f"198.18.{n}.20"
        for n in range(256)
        if identity_for(f"198.18.{n}.20", "Microsoft Windows Server 2016").dns_domain is not None
    )


def workgroup_address() -> str:
    return next(
        f"198.18.{n}.20"
        for n in range(256)
        if identity_for(f"198.18.{n}.20", "Microsoft Windows 7 SP1").dns_domain is None
    )


def nmap(*args: str) -> str:
    result = subprocess.run(
        ["nmap", "-Pn", "-n", *args], capture_output=True, text=True, timeout=50, check=True
    )
    return result.stdout


@needs_nmap
def test_nmap_names_the_service_and_smb_os_discovery_the_host() -> None:
    host, dst = alias_address(), workgroup_address()
    personality = "Microsoft Windows 7 Professional SP1"
    identity = identity_for(dst, personality)
    with (
        well_known(smb.serve_microsoft_ds, personality, dst, host, 445) as direct,
        well_known(smb.serve_netbios_ssn, personality, dst, host, 139),
    ):
        out = nmap("-sV", "-p", "139,445", "--script", "smb-os-discovery", host)
    assert re.search(r"139/tcp\s+open\s+netbios-ssn\s+Microsoft Windows netbios-ssn", out), out
    # -sV says "Microsoft Windows 7 - 10"; smb-os-discovery then puts the exact release in its place.
    product = r"(Microsoft Windows 7 - 10|Windows 7 Professional 7601 Service Pack 1) microsoft-ds"
    assert re.search(
        rf"445/tcp\s+open\s+microsoft-ds\s+{product} \(workgroup: {identity.netbios_domain}\)", out
    )
    assert "OS: Windows 7 Professional 7601 Service Pack 1 (Windows 7 Professional 6.1)" in out
    assert "OS CPE: cpe:/o:microsoft:windows_7::sp1:professional" in out
    assert f"Computer name: {identity.computer}" in out
    assert f"Workgroup: {identity.netbios_domain}" in out
    assert re.search(r"System time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", out)
    assert any(e[0] == "login" and e[2]["anonymous"] for e in direct.events.events)


@needs_nmap
def test_smb_os_discovery_on_a_domain_member() -> None:
    host, dst = alias_address(), domain_member_address()
    identity = identity_for(dst, "Microsoft Windows Server 2016")
    with well_known(smb.serve_smb, "Microsoft Windows Server 2016", dst, host, 445):
        out = nmap("-p", "445", "--script", "smb-os-discovery", host)
    assert re.search(
        r"OS: Windows Server 2016 (Standard|Datacenter) 14393 \(Windows Server 2016 \w+ 6\.3\)", out
    ), out
    assert f"Domain name: {identity.dns_domain}" in out
    assert f"FQDN: {identity.fqdn}" in out
    assert f"Forest name: {identity.dns_domain}" in out
    # As from a real domain member: smb.lua keeps the NUL of the basic negotiate's domain name,
    # so the two domain names differ and neither the NetBIOS domain nor a workgroup is printed.
    assert "Workgroup" not in out and "NetBIOS domain name" not in out


def smbclient(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["smbclient", *args], capture_output=True, text=True, timeout=20, check=False)


@needs_smbclient
def test_smbclient_anonymous_listing_is_denied() -> None:
    with listening(smb.serve_microsoft_ds, "Microsoft Windows 10 1809", "198.18.0.40") as server:
        result = smbclient("-L", "//127.0.0.1", "-p", str(server.port), "-N")
    output = result.stdout + result.stderr
    assert "Anonymous login successful" in output and "NT_STATUS_ACCESS_DENIED" in output, output
    assert any(e[1] == "TREE_CONNECT \\\\127.0.0.1\\IPC$" for e in server.events.events)
    assert any(e[0] == "request" and e[1] == "SMB2 NEGOTIATE" for e in server.events.events)


@needs_smbclient
@pytest.mark.parametrize(
    ("personality", "options", "protocol"),
    [
        ("Microsoft Windows Server 2019", [], "SMB2"),
        ("Microsoft Windows XP SP3", ["--option=client min protocol=NT1"], "SMB1"),
        (
            "Microsoft Windows 7 SP1",
            ["--option=client min protocol=NT1"],
            "SMB2",
        ),  # SMB1 negotiate, then SMB2
    ],
)
def test_smbclient_password_logon_fails_and_its_hash_cracks(personality, options, protocol) -> None:
    with listening(smb.serve_smb, personality, "198.18.0.41") as server:
        result = smbclient("-L", "//127.0.0.1", "-p", str(server.port), "-U", "ACME\\alice%S3cret!", *options)
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout + result.stderr, result
    login = next(e[2] for e in server.events.events if e[0] == "login" and e[2]["user"] == "alice")
    assert (login["domain"], login["protocol"], login["accepted"]) == ("ACME", protocol, False)
    assert login["hashcat_mode"] == 5600 and ntlmv2_line_matches(login["hash"], "S3cret!")


@needs_smbclient
def test_smbclient_cannot_talk_to_xp_without_smb1() -> None:
    with listening(smb.serve_smb, "Microsoft Windows XP SP3", "198.18.0.42") as server:
        result = smbclient("-L", "//127.0.0.1", "-p", str(server.port), "-N")
    assert result.returncode != 0 and "NT_STATUS_CONNECTION_DISCONNECTED" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# Loopback: bad input


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(payload)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)  # nothing more is coming: the server may hang up when done
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := raw.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks)


def test_garbage_oversize_and_wrong_framing_close_the_connection() -> None:
    with listening(smb.serve_microsoft_ds, "Microsoft Windows 7 SP1", "198.18.0.43") as server:
        assert exchange(server.port, m.direct_tcp_frame(b"GET / HTTP/1.0\r\n\r\n")) == b""
        assert exchange(server.port, b"\x00\xff\xff\xff" + b"A" * 1000) == b""  # 16 MB announced
        assert exchange(server.port, b"\x81\x00\x00\x44" + b"A" * 68) == b""  # NetBIOS request on 445
        answer = exchange(
            server.port, m.direct_tcp_frame(negotiate("NT LM 0.12")) + m.direct_tcp_frame(b"\xffSMB")
        )
    assert (
        answer.startswith(b"\x00\x00\x00") and answer[4:8] == b"\xffSMB"
    )  # the negotiate answered, then closed
    assert any(e[0] == "bad-request" for e in server.events.events)


def test_port_139_wants_a_session_request_first() -> None:
    with listening(smb.serve_netbios_ssn, "Microsoft Windows 7 SP1", "198.18.0.44") as server:
        # What Windows answers to SMB without a session request (nmap's netbios-ssn match).
        assert exchange(server.port, m.nbss_frame(0, negotiate("NT LM 0.12"))) == b"\x83\x00\x00\x01\x8f"
        wrong = m.nbss_frame(0x81, m.netbios_name_encode("OTHERHOST") + m.netbios_name_encode("NMAP"))
        assert exchange(server.port, wrong) == b"\x83\x00\x00\x01\x82"
        right = m.nbss_frame(0x81, m.netbios_name_encode("*SMBSERVER") + m.netbios_name_encode("NMAP"))
        answer = exchange(server.port, right + m.nbss_frame(0, negotiate("NT LM 0.12")))
    assert answer[:4] == b"\x82\x00\x00\x00" and answer[8:12] == b"\xffSMB"


def test_slow_clients_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smb, "IDLE", 0.3)
    with (
        listening(smb.serve_microsoft_ds, "Microsoft Windows 7 SP1", "198.18.0.45") as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
    ):
        raw.sendall(b"\x00\x00")  # half a header, then nothing
        assert raw.recv(100) == b""  # closed by the server, long before the client's time-out


# ---------------------------------------------------------------------------------------------
# NetBIOS name service (UDP 137)


def nbns_query(name: str, suffix: int, qtype: int, *, flags: int = 0x0010) -> bytes:
    header = struct.pack(">HHHHHH", 0x1337, flags, 1, 0, 0, 0)
    return header + m.netbios_name_encode(name, suffix) + struct.pack(">HH", qtype, 1)


def parse_node_status(answer: bytes) -> tuple[list[tuple[str, int, int]], bytes]:
    transaction, flags, _, answers, _, _ = struct.unpack_from(">HHHHHH", answer)
    assert (transaction, flags & 0x8000, answers) == (0x1337, 0x8000, 1)
    _, _, used = m.netbios_name_decode(answer[12:])
    pos = 12 + used
    rr_type, _, _, length = struct.unpack_from(">HHIH", answer, pos)
    assert rr_type == 0x21
    data = answer[pos + 10 : pos + 10 + length]
    names = []
    for i in range(data[0]):
        entry = data[1 + 18 * i : 19 + 18 * i]
        names.append((entry[:15].decode().rstrip(), entry[15], struct.unpack(">H", entry[16:])[0]))
    return names, data[1 + 18 * data[0] : 7 + 18 * data[0]]


def test_node_status_and_name_queries_answer_with_the_smb_names() -> None:
    events = Recorder()
    dst = "198.18.0.50"
    host = info("Microsoft Windows XP SP3", dst=dst)
    identity = identity_for(dst, host.personality)
    answer = netbios_ns.serve_netbios_ns(nbns_query("*", 0, 0x21, flags=0), host, events)
    assert answer is not None
    names, mac = parse_node_status(answer)
    assert names[:3] == [
        (identity.computer, 0x00, 0x0400),
        (identity.netbios_domain, 0x00, 0x8400),
        (identity.computer, 0x20, 0x0400),
    ]
    assert (identity.computer, 0x03, 0x0400) in names  # XP's messenger service
    assert mac == b"\0" * 6  # no MAC known for the host: what Samba sends
    positive = netbios_ns.serve_netbios_ns(nbns_query(identity.computer.lower(), 0x20, 0x20), host, events)
    assert positive is not None and positive.endswith(socket.inet_aton(dst))
    assert netbios_ns.serve_netbios_ns(nbns_query("SOMEONE-ELSE", 0x20, 0x20), host, events) is None
    assert (
        netbios_ns.serve_netbios_ns(nbns_query("*", 0, 0x21, flags=0x8400), host, events) is None
    )  # a response
    assert ("request", "NBSTAT") in [e[:2] for e in events.events]


def test_name_service_garbage_is_dropped() -> None:
    events = Recorder()
    rng = random.Random(3)
    valid = nbns_query("*", 0, 0x21, flags=0)
    for _ in range(2000):
        mutated = bytearray(valid[: rng.randint(0, len(valid))])
        for _ in range(rng.randint(0, 4)):
            if mutated:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        answer = netbios_ns.serve_netbios_ns(bytes(mutated), info("Microsoft Windows 7 SP1"), events)
        assert answer is None or isinstance(answer, bytes)
    assert netbios_ns.serve_netbios_ns(b"\0" * 4000, info(), events) is None
    assert any(e[0] == "bad-request" for e in events.events)


@contextlib.contextmanager
def udp_service(service: Callable, personality: str, dst: str, host: str) -> Iterator[None]:
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 137))
    except PermissionError:
        pytest.skip("binding port 137 needs root")
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            connection = ConnectionInfo("udp", peer[0], peer[1], dst, 137, personality, "t")
            if (answer := service(data, connection, Recorder())) is not None:
                sock.sendto(answer, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@needs_nmap
def test_nmap_nbstat_and_port_139_use_the_netbios_name() -> None:
    host, dst = alias_address(), "198.18.0.51"
    personality = "Microsoft Windows Server 2008 R2 SP1"
    identity = identity_for(dst, personality)
    with (
        udp_service(netbios_ns.serve_netbios_ns, personality, dst, host),
        well_known(smb.serve_smb, personality, dst, host, 139) as session,
    ):
        out = nmap("-sU", "-sS", "-p", "U:137,T:139", "--script", "nbstat,smb-os-discovery", host)
    assert f"NetBIOS name: {identity.computer}" in out, out
    assert f"{identity.netbios_domain}<1e>" in out
    assert "OS: Windows Server 2008 R2" in out
    # smb.lua asked UDP 137 for the name, then called it by that name on 139.
    assert ("request", f"NetBIOS session {identity.computer}") in [e[:2] for e in session.events.events]


@needs_nmap
def test_nmap_version_detection_tells_the_releases_apart() -> None:
    expected = {
        "Microsoft Windows XP SP3": "Microsoft Windows XP microsoft-ds",
        "Microsoft Windows Server 2003 SP2": "Microsoft Windows 2003 or 2008 microsoft-ds",
        "Microsoft Windows Server 2016": "Microsoft Windows Server 2008 R2 - 2012 microsoft-ds",
        "Microsoft Windows 10 1809": "Microsoft Windows 7 - 10 microsoft-ds",
        "Linux 4.15 - 5.8": "Samba smbd 4.6.2",  # what nmap says of any Samba with SMB1 off
    }
    hosts = {alias_address(): personality for personality in expected}
    with contextlib.ExitStack() as stack:
        for host, personality in hosts.items():
            stack.enter_context(well_known(smb.serve_smb, personality, "198.18.20.5", host, 445))
        out = nmap("-sV", "-p", "445", "-oG", "-", *hosts)
    for host, personality in hosts.items():
        line = next(line for line in out.splitlines() if f"Host: {host} " in line and "Ports:" in line)
        assert expected[personality] in line, line
