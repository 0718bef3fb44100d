"""Pure encoders and decoders for the SMB emulator (and the NTLM part of the RDP one).

No IO here: bytes in, bytes or small records out. What lives here:

- which Windows (or Samba) a virtual host is: `profile_for` maps an nmap-os-db name to the
  strings, build numbers and SMB limits that version really sends (its names, workgroup or
  domain, GUID and boot time are the host's identity, `dynapot.services.identity`);
- NetBIOS session framing and first-level name encoding;
- the few DER shapes of SPNEGO that SMB uses, and NTLMSSP CHALLENGE / AUTHENTICATE, with
  the client's response turned into a hashcat line (modes 5500 and 5600);
- SMB1 (MS-CIFS/MS-SMB) and SMB2 (MS-SMB2) headers and the handful of messages we answer.

Every decoder takes attacker bytes: it checks lengths before unpacking and raises
`MalformedMessage` (a ValueError) for anything it cannot read, never something else.
"""

from __future__ import annotations

import encodings.ascii
import encodings.latin_1
import encodings.utf_16_le
import random
import re
import struct
import time
from dataclasses import dataclass
from typing import Any

from dynapot.services.contract import ConnectionInfo, clip
from dynapot.services.identity import HostIdentity
from dynapot.services.systems import WindowsRelease, windows_release

# The codecs are imported here, not on first decode: after the sensor drops root it may not read them.
_CODECS = (encodings.ascii, encodings.latin_1, encodings.utf_16_le)

RESPONSE_LIMIT = 1024  # bytes of an NTLM response kept for its hash line


class MalformedMessage(ValueError):
    """The peer sent something we cannot parse; the caller answers as Windows would, or closes."""


# NT status codes (MS-ERREF 2.3).
STATUS_SUCCESS = 0x00000000
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_ACCOUNT_DISABLED = 0xC0000072
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_NETWORK_NAME_DELETED = 0xC00000C9
STATUS_USER_SESSION_DELETED = 0xC0000203
STATUS_INVALID_HANDLE = 0xC0000008

UNIX_TO_FILETIME = 11644473600  # seconds from 1601-01-01 to 1970-01-01


def filetime(seconds: float | None = None) -> int:
    """A Windows FILETIME (100 ns ticks since 1601) for a Unix time, default now."""
    now = time.time() if seconds is None else seconds
    return int((now + UNIX_TO_FILETIME) * 10_000_000)


def utc_offset_minutes() -> int:
    """The sensor's local UTC offset: the virtual hosts live in the same building as it."""
    return time.localtime().tm_gmtoff // 60


# ---------------------------------------------------------------------------------------------
# Which Windows a host is


@dataclass(frozen=True, slots=True)
class WindowsProfile:
    """What one Windows release (or Samba) says about itself over SMB and NTLM."""

    key: str  # "xp", "2003", "7", "2016", "samba", ...
    native_os: str  # SMB1 session setup NativeOS: what smb-os-discovery prints as "OS"
    native_lanman: str
    version: tuple[int, int, int]  # NTLMSSP VERSION: major, minor, build
    smb2_max: int  # highest SMB2 dialect (0x0202 ... 0x0311); 0 when it speaks only SMB1
    smb1: bool  # False: SMB1 disabled (modern Samba), the negotiate gets "no dialect"
    server: bool  # a server SKU (more SMB1 multiplexing, bigger buffers)
    extended_security: bool  # NTLMSSP in SPNEGO; NT4 only knows the 8-byte challenge
    max_mpx: int
    max_buffer: int
    capabilities: int  # SMB1 CAP_* without CAP_EXTENDED_SECURITY
    samba: bool = False

    @property
    def nt6(self) -> bool:
        """Vista and later: NTLM target info carries a timestamp, RDP negotiates security."""
        return self.version[0] >= 6 and not self.samba


# Editions a host of that release may run, the first the most common.
_EDITIONS = {
    "vista": ("Business", "Ultimate", "Home Premium", "Enterprise"),
    "7": ("Professional", "Professional", "Enterprise", "Ultimate"),
    "8": ("Pro", "Enterprise"),
    "8.1": ("Pro", "Pro", "Enterprise"),
    "10": ("Pro", "Pro", "Enterprise", "Education"),
    "11": ("Pro", "Pro", "Enterprise"),
    "server": ("Standard", "Standard", "Standard", "Datacenter"),
}
# The highest SMB2 dialect of each release that has SMB2.
_SMB2_MAX = {
    "vista": 0x0202,
    "2008": 0x0202,
    "7": 0x0210,
    "2008r2": 0x0210,
    "8": 0x0300,
    "2012": 0x0300,
    "8.1": 0x0302,
    "2012r2": 0x0302,
}
# SMB1 capabilities (without CAP_EXTENDED_SECURITY) where they differ from 7's and later ones'.
_CAPABILITIES = {
    "9x": 0xE3F5,
    "nt4": 0x43FD,
    "2000": 0xF3FD,
    "xp": 0xE3FD,
    "2003": 0x0001F3FD,
    "vista": 0x0001E3FD,
    "2008": 0x0001F3FD,
}


def _edition(key: str, name: str, rng: random.Random) -> str:
    choices = _EDITIONS["server" if key not in _EDITIONS else key]
    for edition in choices:
        if edition.lower() in name:
            return edition
    if "datacenter" in name or "data center" in name:
        return "Datacenter"
    if "enterprise" in name:
        return "Enterprise"
    return rng.choice(choices)


def _labels(release: WindowsRelease, name: str, rng: random.Random) -> tuple[str, str]:
    """(NativeOS, NativeLanMan): what smb-os-discovery prints as the OS and its LAN Manager."""
    key, (major, minor, build), pack = release.key, release.version, release.service_pack
    if key == "9x":
        return "Windows 4.0", "Windows 4.0"
    if key == "nt4":
        return "Windows NT 1381", "NT LAN Manager 4.0"
    if key in ("2000", "xp"):
        return f"Windows {major}.{minor}", "Windows 2000 LAN Manager"
    if key == "2003":
        return f"Windows Server 2003 3790{f' Service Pack {pack}' if pack else ''}", "Windows Server 2003 5.2"
    edition = _edition(key, name, rng)
    if key == "vista":
        label = f"Windows Vista (TM) {edition}"
    elif key == "2008":
        label = f"Windows Server (R) 2008 {edition}"
    elif key == "2008r2":
        label = f"Windows Server 2008 R2 {edition}"
    elif release.server:
        label = f"Windows Server {key.removesuffix('r2')}{' R2' if key.endswith('r2') else ''} {edition}"
    else:
        label = f"Windows {key} {edition}"
    pack_text = f" Service Pack {pack}" if pack and major == 6 and minor < 2 else ""
    # Windows 10 and later still say "6.3" in NativeLanMan.
    return f"{label} {build}{pack_text}", f"{label} 6.{minor if major == 6 else 3}"


def profile_for(
    personality: str | None,
    product: str | None = None,
    version: str | None = None,
    *,
    rng: random.Random | None = None,
) -> WindowsProfile:
    """The SMB face of a host: its Windows release from the nmap-os-db name, Samba for non-Windows.

    `rng` (the host's own, `HostIdentity.rng("edition")`) picks an edition when the name does not
    say, so two Windows 7 hosts may be a Professional and an Enterprise, but one host is always the same.
    """
    # Without a personality, nmap's product name ("Microsoft Windows XP microsoft-ds") still tells.
    name = (personality or product or "").lower()
    if (product and "samba" in product.lower()) or (name and "windows" not in name):
        return _samba_profile(version)
    release = windows_release(name)
    native_os, lanman = _labels(release, name, rng or random.Random(0))
    key, server = release.key, release.server
    legacy = release.legacy
    return WindowsProfile(
        key=key,
        native_os=native_os,
        native_lanman=lanman,
        version=release.version,
        smb2_max=0 if legacy else _SMB2_MAX.get(key, 0x0311),
        smb1=True,
        server=server,
        extended_security=key not in ("9x", "nt4"),
        # Servers multiplex more requests and offer bigger buffers (what nmap's SMB matches key on).
        max_mpx=50 if server else 10,
        max_buffer=16644 if server else 4356,
        capabilities=_CAPABILITIES.get(key, 0x0001E3FC),
    )


def profile_of(info: ConnectionInfo) -> WindowsProfile:
    """The SMB face of the host a connection reached."""
    return profile_for(info.personality, info.product, info.version, rng=info.identity.rng("edition"))


def _samba_profile(version: str | None) -> WindowsProfile:
    release = version if version and re.match(r"^\d+\.\d+\.\d+", version) else None
    old = bool(release and release.startswith("3."))
    return WindowsProfile(
        key="samba",
        # Samba 3 still says "Unix"; 4.x imitates Windows 7's NativeOS.
        native_os="Unix" if old else "Windows 6.1",
        native_lanman=f"Samba {release or '4.15.13-Ubuntu'}",
        version=(6, 1, 0),
        smb2_max=0 if old else 0x0311,
        # Samba 4.11 and later refuse SMB1 unless told otherwise ("server min protocol").
        smb1=old,
        server=True,
        extended_security=True,
        max_mpx=50,
        max_buffer=16644,
        capabilities=0x0000F3FD,
        samba=True,
    )


# ---------------------------------------------------------------------------------------------
# NetBIOS session service (RFC 1002)

NBSS_MESSAGE = 0x00
NBSS_REQUEST = 0x81
NBSS_POSITIVE = 0x82
NBSS_NEGATIVE = 0x83
NBSS_KEEPALIVE = 0x85
NBSS_CALLED_NAME_NOT_PRESENT = 0x82
NBSS_UNSPECIFIED = 0x8F


def nbss_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, (len(payload) >> 16) & 0x01, len(payload) & 0xFFFF) + payload


def direct_tcp_frame(payload: bytes) -> bytes:
    """Port 445: a zero byte and a 24-bit length."""
    return struct.pack(">I", len(payload) & 0xFFFFFF) + payload


def netbios_name_decode(data: bytes) -> tuple[str, int, int]:
    """(name, suffix, bytes consumed) of a first-level encoded name (a 32-byte label, then 0)."""
    if len(data) < 34 or data[0] != 32:
        raise MalformedMessage("bad NetBIOS name")
    encoded = data[1:33]
    if any(not 0x41 <= c <= 0x50 for c in encoded):
        raise MalformedMessage("bad NetBIOS name encoding")
    raw = bytes(((encoded[i] - 0x41) << 4) | (encoded[i + 1] - 0x41) for i in range(0, 32, 2))
    # Skip any scope labels, bounded by the buffer.
    pos = 33
    while pos < len(data) and data[pos] != 0:
        pos += 1 + data[pos]
    if pos >= len(data):
        raise MalformedMessage("unterminated NetBIOS name")
    return raw[:15].decode("latin-1").rstrip(" \0"), raw[15], pos + 1


def netbios_name_encode(name: str, suffix: int = 0x20) -> bytes:
    raw = name.upper().encode("latin-1", "replace")[:15].ljust(15, b" ") + bytes([suffix])
    if name == "*":
        raw = b"*" + b"\0" * 15
    encoded = bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F)))
    return b"\x20" + encoded + b"\0"


# ---------------------------------------------------------------------------------------------
# DER / SPNEGO (RFC 4178), only the shapes SMB and CredSSP use

OID_SPNEGO = bytes.fromhex("2b0601050502")
OID_NTLMSSP = bytes.fromhex("2b06010401823702020a")
OID_NEGOEX = bytes.fromhex("2b06010401823702021e")
OID_MS_KRB5 = bytes.fromhex("2a864882f712010202")
OID_KRB5 = bytes.fromhex("2a864886f712010202")
OID_KRB5_U2U = bytes.fromhex("2a864886f71201020203")
NEG_ACCEPT_COMPLETED, NEG_ACCEPT_INCOMPLETE, NEG_REJECT = 0, 1, 2


def der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    elif size < 0x100:
        length = bytes([0x81, size])
    elif size < 0x10000:
        length = bytes([0x82]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x83]) + size.to_bytes(3, "big")
    return bytes([tag]) + length + content


def der_read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the TLV at `pos`; MalformedMessage if it overruns."""
    if pos + 2 > len(data):
        raise MalformedMessage("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + count > len(data):
            raise MalformedMessage("bad DER length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        size = first
    if pos + size > len(data):
        raise MalformedMessage("DER value overruns")
    return tag, data[pos : pos + size], pos + size


def find_ntlmssp(blob: bytes) -> bytes | None:
    """The NTLMSSP message inside a GSS/SPNEGO token, or the blob itself when it is raw NTLMSSP."""
    if blob.startswith(b"NTLMSSP\0"):
        return blob
    budget = [256]  # TLVs we are willing to visit

    def walk(data: bytes, depth: int) -> bytes | None:
        pos = 0
        while pos < len(data) and budget[0] > 0:
            budget[0] -= 1
            tag, content, pos = der_read(data, pos)
            if tag == 0x04 and content.startswith(b"NTLMSSP\0"):
                return content
            if (tag & 0x20) and depth < 8:
                found = walk(content, depth + 1)
                if found is not None:
                    return found
        return None

    try:
        return walk(blob, 0)
    except MalformedMessage:
        # A mangled wrapper: fall back to the NTLMSSP signature, within the blob.
        start = blob.find(b"NTLMSSP\0")
        return blob[start:] if start >= 0 else None


def spnego_init(mechs: list[bytes], hint: str | None = None) -> bytes:
    """The server's negTokenInit (in SMB NEGOTIATE responses): the mechanisms it accepts."""
    body = der(0xA0, der(0x30, b"".join(der(0x06, oid) for oid in mechs)))
    if hint is not None:
        body += der(0xA3, der(0x30, der(0xA0, der(0x1B, hint.encode()))))
    return der(0x60, der(0x06, OID_SPNEGO) + der(0xA0, der(0x30, body)))


def spnego_response(state: int, token: bytes | None = None, mech: bytes | None = OID_NTLMSSP) -> bytes:
    """A negTokenResp: the negotiation state, the mechanism chosen and the next token."""
    body = der(0xA0, der(0x0A, bytes([state])))
    if mech is not None:
        body += der(0xA1, der(0x06, mech))
    if token is not None:
        body += der(0xA2, der(0x04, token))
    return der(0xA1, der(0x30, body))


def is_spnego(blob: bytes) -> bool:
    return blob[:1] in (b"\x60", b"\xa1")


def server_mechs(profile: WindowsProfile, identity: HostIdentity) -> bytes:
    """The SPNEGO hint a host of this OS sends in its NEGOTIATE response."""
    if profile.samba:
        return spnego_init([OID_NTLMSSP], "not_defined_in_RFC4178@please_ignore")
    kerberos = [OID_MS_KRB5, OID_KRB5, OID_KRB5_U2U]
    if profile.version >= (6, 2, 0):
        return spnego_init([OID_NEGOEX, *kerberos, OID_NTLMSSP])
    if profile.nt6:
        return spnego_init([*kerberos, OID_NTLMSSP], "not_defined_in_RFC4178@please_ignore")
    return spnego_init([*kerberos, OID_NTLMSSP] if identity.dns_domain else [OID_NTLMSSP])


# ---------------------------------------------------------------------------------------------
# NTLMSSP (MS-NLMP)

NTLM_NEGOTIATE_UNICODE = 0x00000001
NTLM_NEGOTIATE_OEM = 0x00000002
NTLM_REQUEST_TARGET = 0x00000004
NTLM_NEGOTIATE_SIGN = 0x00000010
NTLM_NEGOTIATE_SEAL = 0x00000020
NTLM_NEGOTIATE_NTLM = 0x00000200
NTLM_ALWAYS_SIGN = 0x00008000
NTLM_TARGET_TYPE_DOMAIN = 0x00010000
NTLM_TARGET_TYPE_SERVER = 0x00020000
NTLM_EXTENDED_SESSIONSECURITY = 0x00080000
NTLM_TARGET_INFO = 0x00800000
NTLM_NEGOTIATE_VERSION = 0x02000000
NTLM_128 = 0x20000000
NTLM_KEY_EXCH = 0x40000000
NTLM_56 = 0x80000000
_NTLM_ECHOED = (
    NTLM_NEGOTIATE_SIGN
    | NTLM_NEGOTIATE_SEAL
    | NTLM_EXTENDED_SESSIONSECURITY
    | NTLM_128
    | NTLM_KEY_EXCH
    | NTLM_56
)

_NTLM_FIELD = struct.Struct("<HHI")
_NTLM_CHALLENGE = struct.Struct("<8sIHHII8s8sHHI")
_NTLM_AUTH = struct.Struct("<8sIHHIHHIHHIHHIHHIHHII")


def ntlm_negotiate_flags(message: bytes) -> int:
    """The flags of an NTLMSSP NEGOTIATE message."""
    if len(message) < 16 or not message.startswith(b"NTLMSSP\0"):
        raise MalformedMessage("not NTLMSSP")
    kind, flags = struct.unpack_from("<II", message, 8)
    if kind != 1:
        raise MalformedMessage(f"NTLMSSP message type {kind}, expected NEGOTIATE")
    return flags


def ntlm_message_type(message: bytes) -> int:
    if len(message) < 12 or not message.startswith(b"NTLMSSP\0"):
        raise MalformedMessage("not NTLMSSP")
    return struct.unpack_from("<I", message, 8)[0]


def _av(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def ntlm_challenge(
    client_flags: int,
    challenge: bytes,
    profile: WindowsProfile,
    identity: HostIdentity,
    now: float | None = None,
) -> bytes:
    """The server's CHALLENGE: its names and clock in the target info, its build in VERSION."""
    member = identity.dns_domain is not None
    if profile.samba or member:
        nb_domain, dns_domain = identity.netbios_domain, identity.dns_domain or ""
    else:
        # A workgroup member names itself as the domain (smb-os-discovery relies on this).
        nb_domain, dns_domain = identity.computer, identity.dns_host
    info = _av(2, _utf16(nb_domain)) + _av(1, _utf16(identity.computer))
    info += _av(4, _utf16(dns_domain)) + _av(3, _utf16(identity.fqdn))
    if member:
        info += _av(5, _utf16(dns_domain))
    if profile.nt6 or profile.samba:
        info += _av(7, struct.pack("<Q", filetime(now)))
    info += _av(0, b"")
    unicode = bool(client_flags & NTLM_NEGOTIATE_UNICODE) or not client_flags & NTLM_NEGOTIATE_OEM
    target = _utf16(nb_domain) if unicode else nb_domain.encode("latin-1", "replace")
    flags = (
        (NTLM_NEGOTIATE_UNICODE if unicode else NTLM_NEGOTIATE_OEM)
        | NTLM_REQUEST_TARGET
        | NTLM_NEGOTIATE_NTLM
        | NTLM_ALWAYS_SIGN
        | (NTLM_TARGET_TYPE_DOMAIN if member else NTLM_TARGET_TYPE_SERVER)
        | NTLM_TARGET_INFO
        | NTLM_NEGOTIATE_VERSION
        | (client_flags & _NTLM_ECHOED)
    )
    major, minor, build = profile.version
    version = struct.pack("<BBH3xB", major, minor, build, 15)
    offset = _NTLM_CHALLENGE.size + len(version)
    header = _NTLM_CHALLENGE.pack(
        b"NTLMSSP\0", 2, len(target), len(target), offset, flags, challenge, b"\0" * 8,
        len(info), len(info), offset + len(target),
    )  # fmt: skip
    return header + version + target + info


@dataclass(frozen=True, slots=True)
class NtlmAuth:
    """What an AUTHENTICATE message (or an SMB1 basic session setup) tells about the client."""

    user: str
    domain: str
    workstation: str
    lm_response: bytes
    nt_response: bytes
    flags: int = 0

    @property
    def anonymous(self) -> bool:
        return not self.user and not self.nt_response and self.lm_response in (b"", b"\0")

    def hashcat(self, challenge: bytes) -> tuple[str, int] | None:
        """(line, hashcat mode) for cracking the response offline; None when there is none."""
        user, domain = self.user.replace(":", ""), self.domain.replace(":", "")
        nt = self.nt_response[:RESPONSE_LIMIT]
        if len(nt) > 24:
            return f"{user}::{domain}:{challenge.hex()}:{nt[:16].hex()}:{nt[16:].hex()}", 5600
        if len(nt) == 24:
            lm = self.lm_response[:24] if len(self.lm_response) >= 24 else b"\0" * 24
            return f"{user}::{domain}:{lm.hex()}:{nt.hex()}:{challenge.hex()}", 5500
        return None


def login_event(
    auth: NtlmAuth, challenge: bytes, *, accepted: bool, protocol: str, password: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(detail, data) of the "login" event for a logon attempt; the detail is the hashcat line if any."""
    hashed = auth.hashcat(challenge) if password is None else None
    if hashed is None and password is None and not auth.anonymous:
        password = ""  # a named user with no response at all: an empty password
    user = f"{auth.domain}\\{auth.user}" if auth.domain else auth.user
    detail = hashed[0] if hashed else clip(f"{user}:{password or ''}")
    data: dict[str, Any] = {
        "user": auth.user,
        "domain": auth.domain,
        "workstation": auth.workstation,
        "password": password,
        "accepted": accepted,
        "anonymous": auth.anonymous,
        "protocol": protocol,
        "hash": hashed[0] if hashed else None,
        "hashcat_mode": hashed[1] if hashed else None,
        "hash_type": {5600: "NetNTLMv2", 5500: "NetNTLMv1"}[hashed[1]] if hashed else None,
    }
    return detail, data


def _field(message: bytes, length: int, offset: int) -> bytes:
    if offset > len(message):
        return b""
    return message[offset : offset + length]


def ntlm_authenticate(message: bytes) -> NtlmAuth:
    if len(message) < _NTLM_AUTH.size or not message.startswith(b"NTLMSSP\0"):
        raise MalformedMessage("short NTLMSSP AUTHENTICATE")
    fields = _NTLM_AUTH.unpack_from(message)
    if fields[1] != 3:
        raise MalformedMessage(f"NTLMSSP message type {fields[1]}, expected AUTHENTICATE")
    lm, nt, domain, user, workstation = (
        _field(message, fields[2 + 3 * i], fields[4 + 3 * i]) for i in range(5)
    )
    flags = fields[20]
    encoding = "utf-16-le" if flags & NTLM_NEGOTIATE_UNICODE else "latin-1"

    def text(raw: bytes) -> str:
        return clip(raw.decode(encoding, "replace"))

    return NtlmAuth(text(user), text(domain), text(workstation), lm, nt, flags)


# ---------------------------------------------------------------------------------------------
# SMB1 (MS-CIFS, MS-SMB)

SMB1_MAGIC = b"\xffSMB"
SMB1_NEGOTIATE = 0x72
SMB1_SESSION_SETUP_ANDX = 0x73
SMB1_LOGOFF_ANDX = 0x74
SMB1_TREE_CONNECT_ANDX = 0x75
SMB1_TREE_DISCONNECT = 0x71
SMB1_ECHO = 0x2B
SMB1_FLAGS_REPLY = 0x80
SMB1_FLAGS2_LONG_NAMES = 0x0001
SMB1_FLAGS2_EXTENDED_SECURITY = 0x0800
SMB1_FLAGS2_NT_STATUS = 0x4000
SMB1_FLAGS2_UNICODE = 0x8000
CAP_EXTENDED_SECURITY = 0x80000000

_SMB1_HEADER = struct.Struct("<4sBIBHH8sHHHHH")
_SMB1_NEGOTIATE_WORDS = struct.Struct("<HBHHIIIIQhB")
_SMB1_SETUP_EXTENDED = struct.Struct("<BBHHHHIHII")
_SMB1_SETUP_BASIC = struct.Struct("<BBHHHHIHHII")


@dataclass(frozen=True, slots=True)
class Smb1Header:
    """The fields of an SMB1 header a reply echoes or decides on."""

    command: int
    status: int
    flags: int
    flags2: int
    pid_high: int
    tid: int
    pid: int
    uid: int
    mid: int

    @property
    def unicode(self) -> bool:
        return bool(self.flags2 & SMB1_FLAGS2_UNICODE)


@dataclass(frozen=True, slots=True)
class Smb1Message:
    header: Smb1Header
    words: bytes
    data: bytes
    data_offset: int  # of `data` from the start of the SMB header (Unicode alignment counts from it)


def smb1_parse(message: bytes) -> Smb1Message:
    if len(message) < _SMB1_HEADER.size + 3 or not message.startswith(SMB1_MAGIC):
        raise MalformedMessage("short SMB1 message")
    fields = _SMB1_HEADER.unpack_from(message)
    header = Smb1Header(fields[1], fields[2], fields[3], fields[4], fields[5], *fields[8:])
    count = message[32]
    words_end = 33 + 2 * count
    if words_end + 2 > len(message):
        raise MalformedMessage("SMB1 parameter words overrun")
    (byte_count,) = struct.unpack_from("<H", message, words_end)
    data = message[words_end + 2 : words_end + 2 + byte_count]
    return Smb1Message(header, message[33:words_end], data, words_end + 2)


def smb1_packet(
    request: Smb1Header,
    status: int,
    words: bytes,
    data: bytes,
    *,
    uid: int | None = None,
    extended: bool | None = None,
) -> bytes:
    """A reply to `request`: its TID, PID and MID echoed, our status, words and data.

    Flags2 echoes the client's Unicode bit, and its extended-security bit unless `extended` says.
    """
    reply_flags2 = SMB1_FLAGS2_NT_STATUS | SMB1_FLAGS2_LONG_NAMES | (request.flags2 & SMB1_FLAGS2_UNICODE)
    if extended is None:
        extended = bool(request.flags2 & SMB1_FLAGS2_EXTENDED_SECURITY)
    if extended:
        reply_flags2 |= SMB1_FLAGS2_EXTENDED_SECURITY
    flags = 0x88 if request.command == SMB1_NEGOTIATE else 0x98
    header = _SMB1_HEADER.pack(
        SMB1_MAGIC, request.command, status, flags, reply_flags2, request.pid_high, b"\0" * 8, 0,
        request.tid, request.pid, request.uid if uid is None else uid, request.mid,
    )  # fmt: skip
    return header + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data


def smb1_error(request: Smb1Header, status: int) -> bytes:
    return smb1_packet(request, status, b"", b"")


def smb1_dialects(data: bytes) -> list[str]:
    """The dialect names of an SMB1 NEGOTIATE request (each 0x02 then a NUL-terminated string)."""
    dialects: list[str] = []
    pos = 0
    while pos < len(data) and len(dialects) < 64:
        if data[pos] != 0x02:
            raise MalformedMessage("bad dialect buffer format")
        end = data.find(b"\0", pos + 1)
        if end < 0:
            raise MalformedMessage("unterminated dialect")
        dialects.append(data[pos + 1 : end].decode("latin-1"))
        pos = end + 1
    return dialects


def smb1_negotiate_response(
    request: Smb1Header,
    dialect_index: int,
    profile: WindowsProfile,
    identity: HostIdentity,
    *,
    challenge: bytes,
    extended: bool,
    now: float | None = None,
) -> bytes:
    """NT LM 0.12 accepted: the server's limits, clock and time zone, then a challenge or a GUID."""
    capabilities = profile.capabilities | (CAP_EXTENDED_SECURITY if extended else 0)
    words = _SMB1_NEGOTIATE_WORDS.pack(
        dialect_index, 0x03, profile.max_mpx, 1, profile.max_buffer, 65536, 0, capabilities,
        filetime(now), -utc_offset_minutes(), 0 if extended else len(challenge),
    )  # fmt: skip
    if extended:
        data = identity.server_guid + server_mechs(profile, identity)
    else:
        # The domain and server names are always Unicode here, whatever Flags2 says.
        data = challenge + _utf16(identity.netbios_domain + "\0") + _utf16(identity.computer + "\0")
    # Flags2 tells the client whether this connection uses extended security, whatever it asked.
    return smb1_packet(request, STATUS_SUCCESS, words, data, extended=extended)


def smb1_no_dialect(request: Smb1Header) -> bytes:
    """No dialect in common: DialectIndex 0xFFFF (what Samba with SMB1 disabled answers)."""
    return smb1_packet(request, STATUS_SUCCESS, struct.pack("<H", 0xFFFF), b"")


@dataclass(frozen=True, slots=True)
class Smb1SessionSetup:
    extended: bool
    blob: bytes  # extended: the security blob
    oem_password: bytes  # basic: LM response (or a plaintext password)
    unicode_password: bytes  # basic: NT response
    account: str
    domain: str
    native_os: str
    native_lanman: str
    capabilities: int


def _smb1_strings(data: bytes, start: int, unicode: bool, count: int) -> list[str]:
    """`count` NUL-terminated strings from data[start:], Unicode ones aligned to 2 bytes."""
    values: list[str] = []
    pos = start
    for _ in range(count):
        if unicode:
            end = pos
            while end + 1 < len(data) and data[end : end + 2] != b"\0\0":
                end += 2
            values.append(clip(data[pos:end].decode("utf-16-le", "replace")))
            pos = end + 2
        else:
            end = data.find(b"\0", pos)
            end = len(data) if end < 0 else end
            values.append(clip(data[pos:end].decode("latin-1")))
            pos = end + 1
        if pos >= len(data):
            values.extend([""] * (count - len(values)))
            break
    return values


def smb1_session_setup(message: Smb1Message) -> Smb1SessionSetup:
    words, data, unicode = message.words, message.data, message.header.unicode
    if len(words) == _SMB1_SETUP_EXTENDED.size:
        fields = _SMB1_SETUP_EXTENDED.unpack(words)
        blob_length, capabilities = fields[7], fields[9]
        blob = data[:blob_length]
        pos = blob_length
        if unicode and (message.data_offset + pos) % 2:
            pos += 1
        native_os, native_lanman = _smb1_strings(data, pos, unicode, 2)
        return Smb1SessionSetup(True, blob, b"", b"", "", "", native_os, native_lanman, capabilities)
    if len(words) == _SMB1_SETUP_BASIC.size:
        fields = _SMB1_SETUP_BASIC.unpack(words)
        oem_length, unicode_length, capabilities = fields[7], fields[8], fields[10]
        oem = data[:oem_length]
        uni = data[oem_length : oem_length + unicode_length]
        pos = oem_length + unicode_length
        if unicode and (message.data_offset + pos) % 2:
            pos += 1
        account, domain, native_os, native_lanman = _smb1_strings(data, pos, unicode, 4)
        return Smb1SessionSetup(False, b"", oem, uni, account, domain, native_os, native_lanman, capabilities)
    raise MalformedMessage(f"SESSION_SETUP_ANDX with {len(words) // 2} words")


def _smb1_text(text: str, unicode: bool) -> bytes:
    return _utf16(text + "\0") if unicode else (text + "\0").encode("latin-1", "replace")


def smb1_session_setup_response(
    request: Smb1Header,
    status: int,
    uid: int,
    profile: WindowsProfile,
    identity: HostIdentity,
    *,
    blob: bytes | None,
    action: int = 0,
) -> bytes:
    """blob None: the basic form (NativeOS, NativeLanMan, PrimaryDomain); else the extended one."""
    unicode = request.unicode
    if blob is None:
        strings = _smb1_text(profile.native_os, unicode) + _smb1_text(profile.native_lanman, unicode)
        strings += _smb1_text(identity.netbios_domain, unicode)
        data_offset = 32 + 1 + 6 + 2
        data = (b"\0" if unicode and data_offset % 2 else b"") + strings
        words = struct.pack("<BBHH", 0xFF, 0, data_offset + len(data), action)
        return smb1_packet(request, status, words, data, uid=uid)
    data_offset = 32 + 1 + 8 + 2
    pad = b"\0" if unicode and (data_offset + len(blob)) % 2 else b""
    data = blob + pad + _smb1_text(profile.native_os, unicode) + _smb1_text(profile.native_lanman, unicode)
    words = struct.pack("<BBHHH", 0xFF, 0, data_offset + len(data), action, len(blob))
    return smb1_packet(request, status, words, data, uid=uid)


def smb1_tree_path(message: Smb1Message) -> str:
    """The share path of a TREE_CONNECT_ANDX (after its password)."""
    if len(message.words) < 8:
        raise MalformedMessage("short TREE_CONNECT_ANDX")
    (password_length,) = struct.unpack_from("<H", message.words, 6)
    pos = password_length
    if message.header.unicode and (message.data_offset + pos) % 2:
        pos += 1
    return _smb1_strings(message.data, pos, message.header.unicode, 1)[0]


# ---------------------------------------------------------------------------------------------
# SMB2 (MS-SMB2)

SMB2_MAGIC = b"\xfeSMB"
SMB2_NEGOTIATE = 0x00
SMB2_SESSION_SETUP = 0x01
SMB2_LOGOFF = 0x02
SMB2_TREE_CONNECT = 0x03
SMB2_TREE_DISCONNECT = 0x04
SMB2_CANCEL = 0x0C
SMB2_ECHO = 0x0D
SMB2_FLAGS_SERVER_TO_REDIR = 0x00000001
SMB2_FLAGS_ASYNC = 0x00000002
SMB2_SESSION_FLAG_IS_NULL = 0x0002
SMB2_DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
SMB2_WILDCARD = 0x02FF

_SMB2_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
_SMB2_NEGOTIATE_REQUEST = struct.Struct("<HHHHI16sIHH")
_SMB2_NEGOTIATE_RESPONSE = struct.Struct("<HHHH16sIIIIQQHHI")


@dataclass(frozen=True, slots=True)
class Smb2Header:
    """The fields of an SMB2 header a reply echoes or decides on (`next_command` chains the
    messages of a compound request)."""

    credit_charge: int
    status: int
    command: int
    credits: int
    flags: int
    next_command: int
    message_id: int
    tree_id: int
    session_id: int


def smb2_parse(message: bytes) -> list[tuple[Smb2Header, bytes]]:
    """The requests of an SMB2 message: one, or a compound chain (NextCommand), each with its body."""
    requests: list[tuple[Smb2Header, bytes]] = []
    pos = 0
    while len(requests) < 16:
        if pos + _SMB2_HEADER.size > len(message) or message[pos : pos + 4] != SMB2_MAGIC:
            raise MalformedMessage("short SMB2 message")
        fields = _SMB2_HEADER.unpack_from(message, pos)
        if fields[1] != 64:
            raise MalformedMessage("bad SMB2 header size")
        # An async header has an AsyncId where the tree id would be.
        tree_id = 0 if fields[6] & SMB2_FLAGS_ASYNC else fields[10]
        header = Smb2Header(*fields[2:9], tree_id, fields[11])
        end = pos + header.next_command if header.next_command else len(message)
        if header.next_command and (header.next_command < 64 or end > len(message)):
            raise MalformedMessage("bad SMB2 NextCommand")
        # A body's offsets count from its own header, so hand over header and body together.
        requests.append((header, message[pos:end]))
        if not header.next_command:
            break
        pos = end
    return requests


def smb2_packet(
    request: Smb2Header, status: int, body: bytes, *, credits: int = 1, session_id: int | None = None
) -> bytes:
    header = _SMB2_HEADER.pack(
        SMB2_MAGIC, 64, request.credit_charge, status, request.command, credits, SMB2_FLAGS_SERVER_TO_REDIR,
        0, request.message_id, 0, request.tree_id,
        request.session_id if session_id is None else session_id, b"\0" * 16,
    )  # fmt: skip
    return header + body


def smb2_error(request: Smb2Header, status: int, *, credits: int = 1) -> bytes:
    return smb2_packet(request, status, struct.pack("<HBBI", 9, 0, 0, 0) + b"\0", credits=credits)


def smb2_compound(responses: list[bytes]) -> bytes:
    """Chain responses with NextCommand, each but the last padded to 8 bytes."""
    out = bytearray()
    for index, response in enumerate(responses):
        if index < len(responses) - 1:
            padded = response + b"\0" * (-len(response) % 8)
            out += padded[:20] + struct.pack("<I", len(padded)) + padded[24:]
        else:
            out += response
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Smb2Negotiate:
    dialects: tuple[int, ...]
    security_mode: int
    capabilities: int
    client_guid: bytes
    contexts: dict[int, bytes]  # negotiate context type -> data (SMB 3.1.1)


def smb2_negotiate_request(message: bytes) -> Smb2Negotiate:
    body = message[64:]
    if len(body) < _SMB2_NEGOTIATE_REQUEST.size:
        raise MalformedMessage("short SMB2 NEGOTIATE")
    size, count, security_mode, _, caps, guid, ctx_offset, ctx_count, _ = _SMB2_NEGOTIATE_REQUEST.unpack_from(
        body
    )
    if size != 36 or count == 0 or count > 64:
        raise MalformedMessage("bad SMB2 NEGOTIATE")
    start = _SMB2_NEGOTIATE_REQUEST.size
    if start + 2 * count > len(body):
        raise MalformedMessage("SMB2 dialects overrun")
    dialects = struct.unpack_from(f"<{count}H", body, start)
    contexts: dict[int, bytes] = {}
    if 0x0311 in dialects and ctx_count:
        pos = ctx_offset
        for _ in range(min(ctx_count, 16)):
            if pos + 8 > len(message):
                break
            kind, length = struct.unpack_from("<HH", message, pos)
            contexts[kind] = message[pos + 8 : pos + 8 + length]
            pos += 8 + length
            pos += -pos % 8
    return Smb2Negotiate(tuple(dialects), security_mode, caps, guid, contexts)


def smb2_pick_dialect(offered: tuple[int, ...], highest: int) -> int | None:
    usable = [d for d in offered if d in SMB2_DIALECTS and d <= highest]
    return max(usable) if usable else None


def _cipher_choice(data: bytes) -> int:
    if len(data) < 2:
        return 0x0001
    (count,) = struct.unpack_from("<H", data)
    ciphers = struct.unpack_from(f"<{min(count, (len(data) - 2) // 2)}H", data, 2)
    for preferred in (0x0002, 0x0001):  # AES-128-GCM, then AES-128-CCM
        if preferred in ciphers:
            return preferred
    return 0


def smb2_negotiate_response(
    request: Smb2Header,
    dialect: int,
    profile: WindowsProfile,
    identity: HostIdentity,
    *,
    client: Smb2Negotiate | None,
    salt: bytes,
    now: float | None = None,
) -> bytes:
    """The SMB2 NEGOTIATE response; `dialect` 0x02FF answers an SMB1 multi-protocol negotiate."""
    if dialect in (SMB2_WILDCARD, 0x0202):
        caps, max_size = 0x01, 65536
    elif dialect == 0x0210:
        caps, max_size = 0x07, 1048576
    else:
        caps, max_size = 0x2F, 8388608
        if dialect in (0x0300, 0x0302) and client is not None and client.capabilities & 0x40:
            caps |= 0x40
    if profile.samba:
        caps, max_size = (caps & 0x07) or 0x01, 8388608
    blob = server_mechs(profile, identity)
    # Windows 7/2008 R2 and earlier report their boot time; later ones send zero.
    start = filetime(identity.boot_time) if profile.version < (6, 2, 0) and not profile.samba else 0
    items: list[bytes] = []
    if dialect == 0x0311:
        items.append(struct.pack("<HHI", 1, 38, 0) + struct.pack("<HHH", 1, 32, 1) + salt)
        if client is not None and 2 in client.contexts:
            cipher = _cipher_choice(client.contexts[2])
            items.append(struct.pack("<HHI", 2, 4, 0) + struct.pack("<HH", 1, cipher))
    # Contexts start 8-aligned and are padded to 8 between each other, not after the last.
    contexts = b"".join(item + b"\0" * (-len(item) % 8) for item in items[:-1]) + (
        items[-1] if items else b""
    )
    context_count = len(items)
    blob_offset = 64 + _SMB2_NEGOTIATE_RESPONSE.size
    context_offset = blob_offset + len(blob)
    context_offset += -context_offset % 8
    body = _SMB2_NEGOTIATE_RESPONSE.pack(
        65, 0x01, dialect, context_count, identity.server_guid, caps, max_size, max_size, max_size,
        filetime(now), start, blob_offset, len(blob), context_offset if context_count else 0,
    )  # fmt: skip
    body += blob
    if context_count:
        body += b"\0" * (context_offset - blob_offset - len(blob)) + contexts
    return smb2_packet(request, STATUS_SUCCESS, body, credits=1)


def smb2_session_setup_blob(message: bytes) -> bytes:
    body = message[64:]
    if len(body) < 24:
        raise MalformedMessage("short SMB2 SESSION_SETUP")
    size, _, _, _, _, offset, length, _ = struct.unpack_from("<HBBIIHHQ", body)
    if size != 25:
        raise MalformedMessage("bad SMB2 SESSION_SETUP")
    if offset + length > len(message):
        raise MalformedMessage("SMB2 security buffer overruns")
    return message[offset : offset + length]


def smb2_session_setup_response(
    request: Smb2Header, status: int, session_id: int, blob: bytes, *, flags: int = 0, credits: int = 1
) -> bytes:
    body = struct.pack("<HHHH", 9, flags, 64 + 8 if blob else 0, len(blob)) + blob
    return smb2_packet(request, status, body, credits=credits, session_id=session_id)


def smb2_tree_path(message: bytes) -> str:
    body = message[64:]
    if len(body) < 8:
        raise MalformedMessage("short SMB2 TREE_CONNECT")
    _, _, offset, length = struct.unpack_from("<HHHH", body)
    return clip(message[offset : offset + min(length, 1024)].decode("utf-16-le", "replace"))


def smb2_simple_response(request: Smb2Header, *, credits: int = 1) -> bytes:
    """LOGOFF, TREE_DISCONNECT and ECHO all answer with StructureSize 4 and nothing else."""
    return smb2_packet(request, STATUS_SUCCESS, struct.pack("<HH", 4, 0), credits=credits)
