"""Grammar tests for the honeyd configuration model, parser and renderer."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynapot.honeyd import (
    BUILTIN_SERVICES,
    Action,
    Annotation,
    HoneydConfig,
    HoneydConfigError,
    PortRule,
    Subsystem,
    Template,
    load_config,
    parse_config,
    render_config,
)
from dynapot.honeyd.config import name_problem
from dynapot.honeyd.parser import tokenize
from dynapot.honeyd.render import quote

CLASSIC = r"""# A honeyd.conf in the classic style.
create default
set default default tcp action block
set default default udp action block
set default default icmp action block

create windows
set windows personality "Microsoft Windows XP Professional SP1"
set windows ethernet "dell"
set windows uptime 1728650
set windows droprate in 0
set windows default tcp action reset
set windows default icmp action open
add windows tcp port 21 "sh scripts/ftp.sh $ipsrc $sport $ipdst $dport"
add windows tcp port 80 "perl scripts/iis-emulator/main.pl"
add windows tcp port 135 open
add windows tcp port 139 open
add windows tcp port 445 "smb"
add windows udp port 137 open
add windows udp port 138 open

create linux
set linux personality "Linux 2.6.11 - 2.6.20"
set linux ethernet "00:0C:29:AA:BB:CC"
set linux uid 32767 gid 32767
set linux maxfds 64
set linux default tcp action reset
add linux tcp port 22 "ssh"
add linux tcp port 23 proxy $ipsrc:23
add linux tcp port 25 "sh scripts/smtp.pl"
add linux tcp port 8080 proxy 198.18.0.9:80
add linux subsystem "/usr/share/honeyd/scripts/web.sh" shared restart

create router
set router personality "Cisco 1601 router running IOS 12.1(5)"
set router ethernet "cisco"
set router default tcp action reset
set router default udp action closed
add router tcp port 23 "perl scripts/router-telnet.pl"
add router udp port 161 "snmp"

clone linux2 linux
set linux2 uptime 3600

annotate "Linux 2.6.11 - 2.6.20" no finscan

bind 198.18.0.20 windows
bind 198.18.0.21 windows
bind 198.18.0.30 linux
bind 198.18.0.1 router
bind 198.18.0.31 linux2
set 198.18.0.21 ethernet "00:0c:29:12:34:56"
add 198.18.0.21 tcp port 3389 "rdp"
"""


def test_classic_config_parses_to_expected_model() -> None:
    config = parse_config(CLASSIC)

    assert list(config.templates) == [
        "default",
        "windows",
        "linux",
        "router",
        "linux2",
        "198.18.0.21",
    ]
    default = config.templates["default"]
    assert default.defaults == {"tcp": Action("block"), "udp": Action("block"), "icmp": Action("block")}

    win = config.templates["windows"]
    assert win.personality == "Microsoft Windows XP Professional SP1"
    assert win.ethernet == "dell"
    assert win.uptime == 1728650
    assert win.droprate == 0
    assert win.defaults == {"tcp": Action("reset"), "icmp": Action("open")}
    assert win.ports[("tcp", 21)] == Action("command", "sh scripts/ftp.sh $ipsrc $sport $ipdst $dport")
    assert win.ports[("tcp", 445)] == Action("service", "smb")
    assert win.ports[("udp", 137)] == Action("open")
    assert win.port_rules()[0] == PortRule("tcp", 21, win.ports[("tcp", 21)])
    assert [(r.proto, r.port) for r in win.port_rules()] == [
        ("tcp", 21),
        ("tcp", 80),
        ("tcp", 135),
        ("tcp", 139),
        ("tcp", 445),
        ("udp", 137),
        ("udp", 138),
    ]
    assert win.line == 7

    linux = config.templates["linux"]
    assert linux.ethernet == "00:0c:29:aa:bb:cc"  # MACs are canonicalised to lower case
    assert (linux.uid, linux.gid, linux.maxfds) == (32767, 32767, 64)
    assert linux.ports[("tcp", 22)] == Action("service", "ssh")
    assert linux.ports[("tcp", 23)] == Action("proxy", "$ipsrc:23")
    assert linux.ports[("tcp", 8080)] == Action("proxy", "198.18.0.9:80")
    assert linux.subsystems == [Subsystem("/usr/share/honeyd/scripts/web.sh", shared=True, restart=True)]

    assert config.templates["router"].defaults["udp"] == Action("closed")
    assert config.templates["router"].personality == "Cisco 1601 router running IOS 12.1(5)"

    # clone is a deep copy: the clone's change does not reach the original.
    linux2 = config.templates["linux2"]
    assert linux2.uptime == 3600 and linux.uptime is None
    assert linux2.ports == linux.ports and linux2.ports is not linux.ports

    assert config.annotations == [Annotation("Linux 2.6.11 - 2.6.20", "no finscan")]

    assert config.binds == {
        "198.18.0.20": "windows",
        "198.18.0.21": "198.18.0.21",
        "198.18.0.30": "linux",
        "198.18.0.1": "router",
        "198.18.0.31": "linux2",
    }
    assert config.bound_addresses() == [
        "198.18.0.1",
        "198.18.0.20",
        "198.18.0.21",
        "198.18.0.30",
        "198.18.0.31",
    ]
    assert config.bind_lines["198.18.0.20"] == 47

    # `set`/`add` on a bound address change only that host, as in honeyd.
    host = config.template_for("198.18.0.21")
    assert host is not None and host.base == "windows" and host.is_host_template
    assert host.ethernet == "00:0c:29:12:34:56"
    assert host.ports[("tcp", 3389)] == Action("service", "rdp")
    assert ("tcp", 3389) not in win.ports
    assert config.template_for("198.18.0.20") is win
    # Unbound addresses fall to `default`.
    assert config.template_for("198.18.0.99") is default
    assert HoneydConfig().template_for("198.18.0.99") is None


def test_action_for_uses_port_then_default() -> None:
    win = parse_config(CLASSIC).templates["windows"]
    assert win.action_for("tcp", 135) == Action("open")
    assert win.action_for("tcp", 9999) == Action("reset")
    assert win.action_for("udp", 9999) is None


def test_builtin_services_are_a_parameter() -> None:
    text = 'create t\nadd t tcp port 22 "ssh"\nadd t tcp port 99 "gopher"\n'
    default = parse_config(text).templates["t"]
    assert default.ports[("tcp", 99)] == Action("command", "gopher")
    extended = parse_config(text, builtin_services=BUILTIN_SERVICES | {"gopher"}).templates["t"]
    assert extended.ports[("tcp", 99)] == Action("service", "gopher")
    none = parse_config(text, builtin_services=()).templates["t"]
    assert none.ports[("tcp", 22)] == Action("command", "ssh")


def test_comments_blank_lines_and_whitespace() -> None:
    text = (
        "\n"
        "   # full-line comment\n"
        "\tcreate   a   # trailing comment\n"
        'set a personality "Has # inside"#comment right after\n'
        "   \n"
        "add\ta\ttcp\tport\t80\topen\n"
        "bind 198.18.0.5 a#x\n"
    )
    config = parse_config(text)
    assert config.templates["a"].personality == "Has # inside"
    assert config.templates["a"].ports == {("tcp", 80): Action("open")}
    assert config.binds == {"198.18.0.5": "a"}
    assert config.templates["a"].line == 3
    assert parse_config("") == HoneydConfig()
    assert parse_config("# nothing\n\n") == HoneydConfig()
    assert parse_config("create a\r\nadd a tcp port 1 open\r\n").templates["a"].ports


def test_quoted_strings_with_escapes() -> None:
    text = r"""create t
add t tcp port 1 "sh -c \"echo hi\""
add t tcp port 2 "C:\\temp\\x"
add t tcp port 3 "perl -e 's/\d+//'"
"""
    ports = parse_config(text).templates["t"].ports
    assert ports[("tcp", 1)].target == 'sh -c "echo hi"'
    assert ports[("tcp", 2)].target == "C:\\temp\\x"
    # A backslash that escapes nothing is kept, so honeyd commands read the same as in honeyd.
    assert ports[("tcp", 3)].target == r"perl -e 's/\d+//'"
    assert tokenize(r'a "b c" "d\"e"') == [
        tokenize("a")[0],
        *tokenize('"b c"'),
        *tokenize(r'"d\"e"'),
    ]
    assert [t.value for t in tokenize(r'"x\\" y')] == ["x\\", "y"]


@pytest.mark.parametrize(
    "text",
    ["a", 'sh -c "x"', "C:\\temp\\", "back\\\\slash", '\\"', "perl -e 's/\\d//'", "#not a comment"],
)
def test_quote_round_trips(text: str) -> None:
    assert tokenize(quote(text))[0].value == text
    assert tokenize(quote(text))[0].quoted


def test_quote_leaves_lone_backslashes_alone() -> None:
    # honeyd has no escapes: a backslash before an ordinary character must reach it unchanged.
    assert quote(r"perl -e 's/\d//'") == r'''"perl -e 's/\d//'"'''


ERRORS = [
    # (config text, line number, fragment of the reason)
    ('create a\nset b personality "x"\n', 2, "unknown template 'b'"),
    ("create a\nadd b tcp port 1 open\n", 2, "unknown template 'b'"),
    ("create a\nbind 198.18.0.1 b\n", 2, "unknown template 'b'"),
    ("clone b a\n", 1, "unknown template 'a'"),
    ("create a\nclone a a\n", 2, "already exists"),
    ("create a\n\ncreate a\n", 3, "template 'a' already exists (created on line 1)"),
    ("create default\ncreate default\n", 2, "already exists"),
    ("create a\nbind 198.18.0.1 a\nbind 198.18.0.1 a\n", 3, "already bound (line 2)"),
    ("create a\nbind 198.18.0.300 a\n", 2, "not an IPv4 address"),
    ("create a\nbind 10.0.0 a\n", 2, "not an IPv4 address"),
    ("create a\nbind 010.0.0.1 a\n", 2, "not an IPv4 address"),
    ("create a\nadd a tcp port 0 open\n", 2, "port 0 out of range 1..65535"),
    ("create a\nadd a udp port 65536 open\n", 2, "port 65536 out of range 1..65535"),
    ("create a\nadd a tcp port x open\n", 2, "not a whole number"),
    ("create a\nadd a tcp port 80 accept\n", 2, "bad action 'accept'"),
    ("create a\nadd a tcp port 80\n", 2, "expected: add TEMPLATE tcp port N ACTION"),
    ("create a\nadd a tcp port 80 open now\n", 2, "unexpected words"),
    ("create a\nadd a tcp port 80 proxy 1.2.3.4\n", 2, "not HOST:PORT"),
    ("create a\nadd a tcp port 80 proxy 1.2.3.4:99999\n", 2, "proxy port"),
    ("create a\nadd a sctp port 80 open\n", 2, "expected tcp, udp or subsystem"),
    ("create a\nadd a tcp port 80 open\nadd a tcp port 80 reset\n", 3, "already added"),
    ("create a\nadd a tcp port 80 tarpit reset\n", 2, "tarpit takes open, proxy or a quoted command"),
    ("create a\nadd a tcp port 80 tarpit\n", 2, "expected: tarpit open"),
    ('create a\nset a ethernet "00:0c:29:12:34"\n', 2, "not a MAC address"),
    ('create a\nset a ethernet "zz:0c:29:12:34:56"\n', 2, "not a MAC address"),
    ('create a\nset a personality "Linux\n', 2, "unterminated quoted string"),
    ('create a\nset a personality ""\n', 2, "empty quoted string"),
    ("create a\nset a personality Linux\n", 2, "must be a quoted string"),
    ("frobnicate a\n", 1, "unknown statement 'frobnicate'"),
    ('"create" a\n', 1, "unknown statement 'create'"),
    ("route entry 10.0.0.1\nroute entry 10.0.0.1\n", 2, "10.0.0.1 is already an entry point"),
    ("route entry 10.0.0.300\n", 1, "entry router '10.0.0.300' is not an IPv4 address"),
    ("route 10.0.0.1 link 10.0.0.0\n", 1, "needs a prefix length"),
    ("route 10.0.0.1 link 10.0.0.0/33\n", 1, "prefix length 33 is above 32"),
    ("route 10.0.0.1 add net 10.1.0.0/16 10.1.0.1 latency 5\n", 1, "line ends too soon"),
    ("route 10.0.0.1 add net 10.1.0.0/16 10.1.0.1 loss 101\n", 1, "loss 101 is above 100 percent"),
    ("route 10.0.0.1 add net 10.1.0.0/16 10.0.0.1\n", 1, "the gateway is the router itself"),
    (
        "route 10.0.0.1 add net 10.1.0.0/16 10.1.0.1 bandwidth 1Mbps drop between 20ms - 10ms\n",
        1,
        "the first threshold must be below the second",
    ),
    ("route 10.0.0.1 frob 10.1.0.0/16\n", 1, "expected link or unreach or add"),
    ("include other.conf\n", 1, "include needs a configuration read from a file"),
    ("create a\ncreate b\nadd a use b if source ip = 10.0.0.1\n", 3, "template 'a' is not dynamic"),
    ("dynamic d\ncreate b\nadd d use b if source mac = x\n", 3, "expected os or ip"),
    ("dynamic d\ncreate b\nadd d use b if time between 1:00xm - 2:00am\n", 3, "expected am or pm"),
    ("dynamic d\nadd d tcp port 80 open\n", 2, "is dynamic: it takes `use T if CONDITION`"),
    ("create a\ndelete a tcp port 80\n", 2, "cannot find tcp port 80 in 'a'"),
    ("create a\nbind 198.18.0.1 a\ndelete a\n", 3, "is bound to 198.18.0.1"),
    ("create a\nset a spoof\n", 2, "expected: set TEMPLATE SETTING VALUE"),
    ("create a\nset a spoof sideways 1.2.3.4\n", 2, "expected: set TEMPLATE spoof from IP"),
    ("create a\nset a uptime -5\n", 2, "uptime '-5' is not a whole number"),
    ("create a\nset a uptime 1.5\n", 2, "uptime '1.5' is not a whole number"),
    ("create a\nset a uptime\n", 2, "expected: set TEMPLATE SETTING VALUE"),
    ("create a\nset a droprate in 101\n", 2, "droprate 101 out of range 0..100"),
    ("create a\nset a uid 0\n", 2, "uid 0 out of range"),
    ("create a\nset a maxfds 3\n", 2, "maxfds 3 out of range"),
    ("create a\nset a colour blue\n", 2, "unknown setting 'colour'"),
    ("create a\nset a default sctp action open\n", 2, "expected: set TEMPLATE default"),
    ('create a\nset a default icmp action "sh x"\n', 2, "icmp default action must be one of"),
    ("create tcp\n", 1, "honeyd keyword"),
    ("create 9lives\n", 1, "not a valid template name"),
    ("create a\nset 198.18.0.9 uptime 5\n", 2, "address 198.18.0.9 is not bound"),
    ("create a\nbind 198.18.0.1 a\nadd a tcp port 1 open\n", 3, "already bound on line 2"),
    ('annotate "Linux" sometimes\n', 1, "unknown annotation 'sometimes'"),
    ('create a\nadd a subsystem "x" forever\n', 2, "expected: add TEMPLATE subsystem"),
    ('create a\nadd a tcp port 1 "x"y\n', 2, "unexpected words after the quoted action"),
]


@pytest.mark.parametrize(("text", "line", "reason"), ERRORS)
def test_errors_name_source_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(HoneydConfigError) as info:
        parse_config(text, source="honeyd.conf")
    err = info.value
    assert err.source == "honeyd.conf"
    assert err.line == line
    assert reason in err.reason
    assert err.text == text.splitlines()[line - 1].strip()
    assert str(err).startswith(f"honeyd.conf:{line}: {err.text}: ")


def test_error_message_format() -> None:
    text = "create win\n" + "\n" * 10 + "bind 198.18.0.300 win\n"
    with pytest.raises(HoneydConfigError) as info:
        parse_config(text, source="honeyd.conf")
    assert str(info.value) == "honeyd.conf:12: bind 198.18.0.300 win: not an IPv4 address"


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "honeyd.conf"
    path.write_text(CLASSIC, encoding="utf-8")
    assert load_config(path) == parse_config(CLASSIC)
    path.write_text("create a\nbind 1.2.3 a\n", encoding="utf-8")
    with pytest.raises(HoneydConfigError, match=r"honeyd\.conf:2: bind 1\.2\.3 a: not an IPv4"):
        load_config(path)


def test_classic_round_trip() -> None:
    config = parse_config(CLASSIC)
    text = render_config(config, header="written by dynapot\nsecond line")
    assert text.startswith("# written by dynapot\n# second line\n\ncreate default\n")
    again = parse_config(text)
    assert again == config
    # Rendering is canonical: a second pass is byte for byte the same.
    assert render_config(again, header="written by dynapot\nsecond line") == text


def test_render_layout() -> None:
    config = parse_config(
        'create b\nadd b udp port 53 open\nadd b tcp port 443 open\nadd b tcp port 22 "ssh"\n'
        "create default\nset default default icmp action block\n"
        "bind 198.18.0.10 b\nbind 198.18.0.9 b\n"
    )
    assert render_config(config) == (
        "create default\n"
        "set default default icmp action block\n"
        "\n"
        "create b\n"
        'add b tcp port 22 "ssh"\n'
        "add b tcp port 443 open\n"
        "add b udp port 53 open\n"
        "\n"
        "bind 198.18.0.9 b\n"
        "bind 198.18.0.10 b\n"
    )


def test_render_rejects_what_it_cannot_express() -> None:
    bad_name = HoneydConfig(templates={"open": Template("open")})
    with pytest.raises(ValueError, match="keyword"):
        render_config(bad_name)
    dangling = HoneydConfig(templates={}, binds={"198.18.0.1": "nope"})
    with pytest.raises(ValueError, match="unknown template"):
        render_config(dangling)
    newline = HoneydConfig(templates={"a": Template("a", personality="x\ny")})
    with pytest.raises(ValueError, match="line break"):
        render_config(newline)
    ambiguous = HoneydConfig(templates={"a": Template("a", ports={("tcp", 22): Action("command", "ssh")})})
    with pytest.raises(ValueError, match="built-in service"):
        render_config(ambiguous)
    base = Template("a", ports={("tcp", 1): Action("open")})
    host = Template("198.18.0.1", base="a", ports={("tcp", 1): Action("reset")})
    diverged = HoneydConfig(templates={"a": base, "198.18.0.1": host}, binds={"198.18.0.1": "198.18.0.1"})
    with pytest.raises(ValueError, match="differs from its base"):
        render_config(diverged)


def test_action_invariants() -> None:
    with pytest.raises(ValueError):
        Action("open", "x")
    with pytest.raises(ValueError):
        Action("proxy")
    with pytest.raises(ValueError):
        Action("proxy", "nohostport")
    with pytest.raises(ValueError):
        Action("service", "two words")
    with pytest.raises(ValueError):
        Action("teleport")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Action("open", product="OpenSSH")
    with pytest.raises(ValueError):
        Action("service", "ssh", None, "8.9p1")  # a version of nothing
    with pytest.raises(ValueError):
        Action("service", "ssh", "Open|SSH")


def test_service_imitation_reads_and_renders() -> None:
    config = parse_config(
        'create t\nadd t tcp port 22 "ssh OpenSSH|8.9p1 Ubuntu 3ubuntu0.10"\n'
        'add t tcp port 80 "http Apache httpd"\nadd t tcp port 21 "ftp"\n'
    )
    ports = config.templates["t"].ports
    assert ports[("tcp", 22)] == Action("service", "ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10")
    assert ports[("tcp", 80)] == Action("service", "http", "Apache httpd")
    assert ports[("tcp", 21)] == Action("service", "ftp")
    assert parse_config(render_config(config)) == config
    with pytest.raises(HoneydConfigError, match="needs a product"):
        parse_config('create t\nadd t tcp port 22 "ssh |8.9"\n')


# --- property test: any valid model survives render -> parse ---------------------------------------

_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,12}", fullmatch=True).filter(
    lambda n: name_problem(n) is None
)
# Printable text with the awkward characters made likely: quotes, backslashes, '#', '$'.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\#$ :'),
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    ),
    min_size=1,
    max_size=30,
)
_words = _text.filter(lambda s: s.isprintable() and s == s.strip() and s != "")
_macs = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda bs: ":".join(f"{b:02x}" for b in bs))
_vendor = _text.filter(lambda s: ":" not in s and s.strip() != "")
_ips = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_simple = st.sampled_from(["open", "closed", "reset", "block", "filtered"]).map(Action)
_proxy_hosts = st.one_of(_ips, st.sampled_from(["$ipsrc", "$ipdst", "honeypot.example"]))
_proxy_ports = st.one_of(st.integers(1, 65535).map(str), st.sampled_from(["$sport", "$dport"]))
_actions = st.one_of(
    _simple,
    st.builds(lambda h, p: Action("proxy", f"{h}:{p}"), _proxy_hosts, _proxy_ports),
    st.sampled_from(sorted(BUILTIN_SERVICES)).map(lambda s: Action("service", s)),
    st.builds(
        lambda s, p, v: Action("service", s, p, v if p else None),
        st.sampled_from(sorted(BUILTIN_SERVICES)),
        st.none() | _words.filter(lambda p: "|" not in p),
        st.none() | _words,
    ),
    _text.filter(lambda s: s.strip().partition(" ")[0] not in BUILTIN_SERVICES).map(
        lambda s: Action("command", s)
    ),
)
_ports = st.dictionaries(
    st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535)), _actions, max_size=6
)
_opt_int = st.none() | st.integers(0, 10**9)


@st.composite
def _templates(draw: st.DrawFn, name: str) -> Template:
    uid = draw(st.none() | st.integers(1, 65535))
    defaults = {
        "tcp": draw(st.none() | _actions),
        "udp": draw(st.none() | _actions),
        "icmp": draw(st.none() | _simple),
    }
    return Template(
        name=name,
        personality=draw(st.none() | _text),
        ethernet=draw(st.none() | _macs | _vendor),
        uptime=draw(_opt_int),
        droprate=draw(st.none() | st.integers(0, 100)),
        droprate_syn=draw(st.none() | st.integers(0, 100)),
        uid=uid,
        gid=None if uid is None else draw(st.none() | st.integers(1, 65535)),
        maxfds=draw(st.none() | st.integers(4, 4096)),
        defaults={p: a for p, a in defaults.items() if a is not None},  # type: ignore[misc]
        ports=draw(_ports),
        subsystems=draw(st.lists(st.builds(Subsystem, _text, st.booleans(), st.booleans()), max_size=2)),
    )


@st.composite
def _configs(draw: st.DrawFn) -> HoneydConfig:
    names = draw(st.lists(_names | st.just("default"), min_size=1, max_size=4, unique=True))
    templates = {n: draw(_templates(n)) for n in names}
    binds: dict[str, str] = {}
    for ip in draw(st.lists(_ips, max_size=5, unique=True)):
        base = templates[draw(st.sampled_from(names))]
        if draw(st.booleans()):
            binds[ip] = base.name
            continue
        # A host template: the base plus what `set IP ...` / `add IP ...` lines can change.
        host = base.copy(ip, base=base.name)
        if draw(st.booleans()):
            host.ethernet = draw(_macs)
        if draw(st.booleans()):
            host.uptime = draw(st.integers(0, 10**6))
        host.defaults["tcp"] = draw(_simple)
        for key, action in draw(_ports).items():
            host.ports.setdefault(key, action)
        # A host template equal to its base renders as a plain bind (and reads back as one),
        # so give each one a port of its own.
        port = draw(st.integers(1, 65535).filter(lambda p, taken=base.ports: ("udp", p) not in taken))
        host.ports.setdefault(("udp", port), Action("open"))
        templates[ip] = host
        binds[ip] = ip
    annotations = draw(
        st.lists(
            st.builds(
                Annotation,
                _text,
                st.sampled_from(["finscan", "no finscan", "fragment drop", "fragment old", "fragment new"]),
            ),
            max_size=2,
        )
    )
    return HoneydConfig(templates=templates, binds=binds, annotations=annotations)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_configs())
def test_property_parse_render_round_trip(config: HoneydConfig) -> None:
    text = render_config(config)
    assert parse_config(text) == config


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\u2028b", "a\x0cb", "trailing\n"])
def test_quote_refuses_line_breaks(text: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        quote(text)
