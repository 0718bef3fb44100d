"""The SNMP agent: Debian's net-snmp clients and nmap against it over loopback UDP, its BER codec, fuzzing."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import DatagramServer, needs, needs_nmap, nmap_service_scan

from dynapot.services.contract import ConnectionInfo
from dynapot.services.snmp import (
    COUNTER32,
    GET,
    GET_BULK,
    GET_NEXT,
    INTEGER,
    MAX_RESPONSE,
    MAX_VARBINDS,
    NULL,
    OCTET_STRING,
    SEQUENCE,
    SET,
    TIMETICKS,
    BerError,
    decode_int,
    decode_oid,
    encode_int,
    encode_oid,
    make_agent,
    read_items,
    read_tlv,
    respond,
    tlv,
)

pytestmark = pytest.mark.timeout(30)

needs_snmp_tools = needs("snmpget", "the snmp client tools")

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"


def info(personality: str | None = "Linux 4.15 - 5.8", dst: str = "198.18.0.60", port: int = 161):
    return ConnectionInfo("udp", "127.0.0.1", 40000, dst, port, personality, "t")


def start_agent(personality: str | None = "Linux 4.15 - 5.8", port: int = 0) -> DatagramServer:
    """The SNMP service on a loopback UDP port; each datagram's info names its real sender."""
    return DatagramServer(
        make_agent(),
        lambda peer: ConnectionInfo("udp", peer[0], peer[1], "198.18.0.60", 161, personality, "t"),
        port=port,
    )


@pytest.fixture
def tools_env(tmp_path):
    # Keep the net-snmp tools away from /etc/snmp and /var/lib/snmp (engine boots they persist).
    return {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path), "SNMPCONFPATH": str(tmp_path), "MIBS": ""}


@pytest.fixture
def linux():
    with start_agent() as agent:
        yield agent


def run(
    tool: str, agent: DatagramServer, env: dict, options: str, *operands: str
) -> subprocess.CompletedProcess:
    """`tool -On -t 1 -r 0 OPTIONS 127.0.0.1:PORT OPERANDS...` (options: space-separated)."""
    return subprocess.run(
        [tool, "-On", "-t", "1", "-r", "0", *options.split(), f"127.0.0.1:{agent.port}", *operands],
        capture_output=True,
        text=True,
        timeout=15,
        env=env,
    )


def values(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines():
        oid, sep, value = line.partition(" = ")
        if sep:
            rows[oid.lstrip(".")] = value
    return rows


# -- real clients ---------------------------------------------------------------------------------------


@needs_snmp_tools
def test_snmpwalk_v2c_system_group(linux, tools_env):
    result = run("snmpwalk", linux, tools_env, "-v2c -c public", "1.3.6.1.2.1.1")
    rows = values(result.stdout)
    name = info().identity.hostname
    assert result.returncode == 0
    assert rows[SYS_DESCR].startswith(f'STRING: "Linux {name} 4.15.0-213-generic #224-Ubuntu SMP')
    assert rows["1.3.6.1.2.1.1.2.0"] == "OID: .1.3.6.1.4.1.8072.3.2.10"
    assert rows["1.3.6.1.2.1.1.3.0"].startswith("Timeticks: (")
    assert rows[SYS_NAME] == f'STRING: "{name}"'
    assert rows["1.3.6.1.2.1.1.7.0"] == "INTEGER: 72"
    assert len(rows) == 8
    request = linux.kinds("request")[0]
    assert request[1] == "v2c public get-next 1.3.6.1.2.1.1"
    assert request[2]["oids"] == ["1.3.6.1.2.1.1"] and request[2]["accepted"] is True


@needs_snmp_tools
def test_snmpwalk_v1_and_bulkwalk_agree(linux, tools_env):
    v1 = values(run("snmpwalk", linux, tools_env, "-v1 -c public", "1.3.6.1.2.1.1").stdout)
    bulk = run("snmpbulkwalk", linux, tools_env, "-v2c -c private", "1.3.6.1")
    rows = values(bulk.stdout)
    assert bulk.returncode == 0 and rows[SYS_NAME] == v1[SYS_NAME] and rows[SYS_DESCR] == v1[SYS_DESCR]
    assert len(v1) == 8
    assert any(r[2]["pdu"] == "get-bulk" for r in linux.kinds("request"))


@needs_snmp_tools
@pytest.mark.parametrize(
    ("personality", "descr", "object_id"),
    [
        (
            "Microsoft Windows 7 SP1",
            r"STRING: \"Hardware: Intel64 Family 6 Model \d+ Stepping \d AT/AT COMPATIBLE - "
            r"Software: Windows Version 6\.1 \(Build 7601 Multiprocessor Free\)\"",
            "OID: .1.3.6.1.4.1.311.1.1.3.1.1",
        ),
        (
            "Microsoft Windows Server 2003 SP2",
            r".*Windows Version 5\.2 \(Build 3790 Multiprocessor Free\)\"",
            "OID: .1.3.6.1.4.1.311.1.1.3.1.2",
        ),
        (
            "Cisco 2911 router (IOS 15.4)",
            r"STRING: \"Cisco IOS Software, C2900 Software .*",
            "OID: .1.3.6.1.4.1.9.1.1041",
        ),
        (
            "HP LaserJet 4250 printer",
            r"STRING: \"HP ETHERNET MULTI-ENVIRONMENT.*",
            "OID: .1.3.6.1.4.1.11.2.3.9.1",
        ),
    ],
)
def test_sysdescr_fits_the_os(personality, descr, object_id, tools_env):
    agent = start_agent(personality)
    try:
        rows = values(
            run("snmpget", agent, tools_env, "-v1 -c public", SYS_DESCR, "1.3.6.1.2.1.1.2.0").stdout
        )
    finally:
        agent.close()
    assert re.fullmatch(descr, rows[SYS_DESCR], re.DOTALL) and rows["1.3.6.1.2.1.1.2.0"] == object_id


@needs_snmp_tools
def test_wrong_community_is_silent_but_reported(linux, tools_env):
    result = run("snmpget", linux, tools_env, "-v2c -c s3cret", SYS_NAME)
    assert "Timeout" in result.stderr and result.stdout == ""
    login = linux.kinds("login")[0]
    assert login[1] == ":s3cret" and login[2]["password"] == "s3cret" and login[2]["accepted"] is False
    assert linux.kinds("request")[0][2]["accepted"] is False


@needs_snmp_tools
def test_missing_objects(linux, tools_env):
    v2 = run("snmpget", linux, tools_env, "-v2c -c public", "1.3.6.1.2.1.2.1.0", "1.3.6.1.2.1.1.5.1")
    assert "No Such Object available on this agent at this OID" in v2.stdout
    assert "No Such Instance currently exists at this OID" in v2.stdout
    v1 = run("snmpget", linux, tools_env, "-v1 -c public", SYS_NAME, "1.3.6.1.2.1.2.1.0")
    assert "There is no such variable name in this MIB" in v1.stderr
    assert "1.3.6.1.2.1.2.1.0" in v1.stderr  # the failed object, by error-index


@needs_snmp_tools
def test_set_is_refused_like_a_read_only_agent(linux, tools_env):
    public = run("snmpset", linux, tools_env, "-v2c -c public", "1.3.6.1.2.1.1.4.0", "s", "pwned")
    private = run("snmpset", linux, tools_env, "-v2c -c private", "1.3.6.1.2.1.1.4.0", "s", "pwned")
    assert "noAccess" in public.stderr and "notWritable" in private.stderr
    sets = [r for r in linux.kinds("request") if r[2]["pdu"] == "set"]
    assert len(sets) == 2 and "pwned" in sets[0][2]["values"][0]


@needs_snmp_tools
def test_snmpv3_user_is_reported_and_refused(linux, tools_env):
    result = run("snmpget", linux, tools_env, "-v3 -l authNoPriv -u admin -a SHA -A password1", SYS_NAME)
    assert "Unknown user name" in result.stderr
    login = linux.kinds("login")[0]
    assert login[1] == "admin:" and login[2]["auth"] is True
    assert login[2]["engine_id"].startswith("80001f8880")  # net-snmp's engine ID, learnt by discovery
    assert b"admin" in bytes.fromhex(login[2]["datagram"])  # kept whole, for offline cracking


@needs_snmp_tools
def test_windows_has_no_snmpv3(tools_env):
    agent = start_agent("Microsoft Windows 10")
    try:
        result = run("snmpget", agent, tools_env, "-v3 -l noAuthNoPriv -u x", SYS_NAME)
    finally:
        agent.close()
    assert "Timeout" in result.stderr or "No Response" in result.stderr
    assert agent.kinds("request")[0][1].startswith("v3 ")


@needs_nmap
def test_nmap_service_scan_on_port_161():
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("nmap's UDP scan needs root")
    try:  # nmap sends the SNMP probes to port 161 only; elsewhere the scan takes ~45 s
        agent = start_agent(port=161)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.1:161 ({exc})")
    with agent:
        scan = nmap_service_scan([161], udp=True)
    line = scan.ports[161]
    assert "open" in line and "snmp" in line and "net-snmp" in line and "public" in line
    assert f"Host: {info().identity.hostname}" in scan.output


# -- the agent, without IO ------------------------------------------------------------------------------


def request(
    pdu: int,
    oids: list[str],
    *,
    version: int = 1,
    community: bytes = b"public",
    a: int = 0,
    b: int = 0,
    rid: int = 7,
) -> bytes:
    bindings = b"".join(
        tlv(SEQUENCE, encode_oid(tuple(int(x) for x in oid.split("."))) + tlv(NULL, b"")) for oid in oids
    )
    body = encode_int(rid) + encode_int(a) + encode_int(b) + tlv(SEQUENCE, bindings)
    return tlv(SEQUENCE, encode_int(version) + tlv(OCTET_STRING, community) + tlv(pdu, body))


def decode_response(data: bytes) -> tuple[int, int, list[tuple[str, int, bytes]]]:
    """(error-status, error-index, [(oid, tag, content)])."""
    top = read_tlv(data, 0, len(data))
    items = read_items(data, top.start, top.end)
    fields = read_items(data, items[2].start, items[2].end)
    rows = []
    for binding in read_items(data, fields[3].start, fields[3].end):
        oid, value = read_items(data, binding.start, binding.end)
        rows.append(
            (
                ".".join(map(str, decode_oid(data[oid.start : oid.end]))),
                value.tag,
                data[value.start : value.end],
            )
        )
    return (
        decode_int(data[fields[1].start : fields[1].end]),
        decode_int(data[fields[2].start : fields[2].end]),
        rows,
    )


def ask(datagram: bytes, now: float = 1_700_000_000.0, conn: ConnectionInfo | None = None) -> bytes | None:
    return respond(datagram, conn or info(), lambda *r: None, now)


def test_uptime_grows_and_differs_per_host():
    def ticks(now: float, dst: str) -> int:
        answer = ask(request(GET, ["1.3.6.1.2.1.1.3.0"]), now, info(dst=dst))
        assert answer is not None
        ((_, tag, content),) = decode_response(answer)[2]
        assert tag == TIMETICKS
        return decode_int(b"\0" + content)

    first = ticks(1_700_000_000.0, "198.18.0.60")
    assert ticks(1_700_000_010.0, "198.18.0.60") == first + 1000
    assert ticks(1_700_000_000.0, "198.18.0.61") != first
    assert first > 3 * 3600 * 100  # hours at least: nobody just rebooted


def test_getbulk_is_bounded():
    answer = ask(request(GET_BULK, ["1.3.6.1"] * 10, a=0, b=10_000))
    assert answer is not None and len(answer) <= MAX_RESPONSE
    status, _, rows = decode_response(answer)
    assert status == 0 and 0 < len(rows) <= MAX_VARBINDS


def test_v1_getbulk_and_responses_are_ignored():
    assert ask(request(GET_BULK, ["1.3.6.1"], version=0, b=5)) is None
    assert ask(request(0xA2, ["1.3.6.1"])) is None  # someone else's response
    assert ask(request(GET, ["1.3.6.1.2.1.1.5.0"], version=2)) is None  # no such SNMP version


def test_getnext_past_the_end():
    v2 = decode_response(ask(request(GET_NEXT, ["1.3.6.1.2.1.1.9"])))
    assert v2[2] == [("1.3.6.1.2.1.1.9", 0x82, b"")]  # endOfMibView
    v1 = decode_response(ask(request(GET_NEXT, ["1.3.6.1.2.1.1.9"], version=0)))
    assert v1[:2] == (2, 1)  # noSuchName, first binding


def test_set_values_are_reported():
    reports: list[tuple] = []
    datagram = tlv(
        SEQUENCE,
        encode_int(1)
        + tlv(OCTET_STRING, b"private")
        + tlv(
            SET,
            encode_int(1)
            + encode_int(0)
            + encode_int(0)
            + tlv(
                SEQUENCE, tlv(SEQUENCE, encode_oid((1, 3, 6, 1, 2, 1, 1, 6, 0)) + tlv(OCTET_STRING, b"owned"))
            ),
        ),
    )
    status, index, rows = decode_response(respond(datagram, info(), lambda *r: reports.append(r), 0.0))
    assert (status, index) == (17, 1) and rows[0][2] == b"owned"
    assert reports[0][2]["values"] == ["\\x04\\x05owned"]


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x30",
        b"\x30\x80\x02\x01\x01\x00\x00",  # indefinite length
        b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",  # 4 GiB claimed
        b"\x30\x03\x02\x01",  # content past the end
        b"\x3f\x81\x01\x00",  # multi-byte tag
        tlv(SEQUENCE, tlv(SEQUENCE, b"") * 200),  # too many elements
        tlv(SEQUENCE, encode_int(1) + tlv(OCTET_STRING, b"public") + tlv(GET, encode_int(1))),
        tlv(SEQUENCE, encode_int(1) + tlv(OCTET_STRING, b"public") + tlv(0xAF, b"")),
        tlv(SEQUENCE, encode_int(1 << 80) + tlv(OCTET_STRING, b"public")),
        b"GET / HTTP/1.0\r\n\r\n",
    ],
)
def test_malformed_datagrams_are_reported_and_unanswered(datagram):
    reports: list[tuple] = []
    assert respond(datagram, info(), lambda *r: reports.append(r), 0.0) is None
    assert reports[0][0] == "bad-request"


def test_codec_basics():
    assert encode_int(0) == b"\x02\x01\x00" and encode_int(128) == b"\x02\x02\x00\x80"
    assert encode_int(-1) == b"\x02\x01\xff" and encode_int(65507) == b"\x02\x03\x00\xff\xe3"
    assert encode_int(2**32 - 1, COUNTER32) == b"\x41\x05\x00\xff\xff\xff\xff"
    assert encode_oid((1, 3, 6, 1, 4, 1, 8072)) == b"\x06\x07\x2b\x06\x01\x04\x01\xbf\x08"
    assert tlv(OCTET_STRING, b"x" * 300)[:4] == b"\x04\x82\x01\x2c"
    with pytest.raises(BerError):
        decode_oid(b"\x2b\x86")  # an arc that never ends
    with pytest.raises(BerError):
        decode_int(b"")
    assert read_tlv(b"\x02\x01\x05", 0, 3) == (INTEGER, 2, 3, 0)


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=30), st.integers(0, 2), st.integers(0, 39))
def test_oid_round_trip(arcs, first, second):
    oid = (first, second, *arcs)
    encoded = encode_oid(oid)
    _, start, end, _ = read_tlv(encoded, 0, len(encoded))
    assert decode_oid(encoded[start:end]) == oid


@given(st.integers(-(2**63), 2**64))
def test_int_round_trip(value):
    encoded = encode_int(value)
    _, start, end, _ = read_tlv(encoded, 0, len(encoded))
    assert decode_int(encoded[start:end]) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_datagrams_never_raise(datagram):
    answer = respond(datagram, info(), lambda *r: None, 1_700_000_000.0)
    assert answer is None or isinstance(answer, bytes)


VALID = [
    request(GET, [SYS_DESCR, SYS_NAME]),
    request(GET_NEXT, ["1.3.6.1"], version=0),
    request(GET_BULK, ["1.3.6.1.2.1.1", "1.3.6.1"], a=1, b=5),
    # nmap's SNMPv3 discovery probe
    bytes.fromhex(
        "303a020103300f02024a69020300ffe3040104020103041030"
        "0e0400020100020100040004000400301204000400a00c020237f00201000201003000"
    ),
]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 400),
)
def test_mutated_requests_never_raise(datagram, flips, cut):
    data = bytearray(datagram)
    for pos, byte in flips:
        data[pos % len(data)] = byte
    answer = respond(bytes(data[: max(cut, 1)]), info(), lambda *r: None, 1_700_000_000.0)
    assert answer is None or len(answer) <= MAX_RESPONSE


def test_nmap_v3_probe_gets_a_net_snmp_report():
    answer = ask(VALID[3])
    assert answer is not None
    # What nmap's "net-snmp" match looks for: short header, echoed msgID, engine enterprise 8072.
    assert answer[2:5] == b"\x02\x01\x03" and b"\x02\x02Ji" in answer[:12]
    assert b"\x80\x00\x1f\x88\x80" in answer
    assert ask(VALID[3], conn=info("Microsoft Windows 7")) is None


def test_registered_as_udp_service():
    from dynapot.services import UDP_REGISTRY

    assert UDP_REGISTRY["snmp"](request(GET, [SYS_NAME]), info(), lambda *r: None) is not None
