"""BusyBox telnetd imitated, sans-IO: its stream decoding (`telnet_busybox`), the login's pty
(`telnet_pty`), and the session that joins them, against what the real BusyBox 1.35 telnetd with
Debian's /bin/login answered in the lab (bench/realism_probes.py --service telnet)."""

from __future__ import annotations

import random

from dynapot.services.contract import ConnectionInfo
from dynapot.services.telnet import TELNET_PAIRS, WEAK_PER_HOST, TelnetConfig, TelnetSession
from dynapot.services.telnet_busybox import OPENING, BusyboxTelnetd
from dynapot.services.telnet_pty import LINE_LIMIT, Pty


def info(dst: str = "198.18.0.70") -> ConnectionInfo:
    return ConnectionInfo("tcp", "198.18.0.3", 40000, dst, 23, "Linux 5.4", "t", None)


def session(config: TelnetConfig | None = None, dst: str = "198.18.0.70") -> tuple[TelnetSession, bytes]:
    s = TelnetSession(info(dst), config or TelnetConfig(fail_delay=0))
    out = s.start()
    return s, out.data


# -- the stream: what reaches the pty, and the (only) reply ---------------------------------------------


def test_busybox_answers_no_negotiation_at_all() -> None:
    decoder = BusyboxTelnetd()
    for request in (b"\xff\xfb\x1f", b"\xff\xfd\x01", b"\xff\xfe\x03", b"\xff\xfc\x01", b"\xff\xfb\x18"):
        assert decoder.feed(request) == (b"", b"")


def test_ayt_is_iac_nop_with_its_iac_doubled() -> None:
    assert BusyboxTelnetd().feed(b"\xff\xf6") == (b"", b"\xff\xff\xf1")


def test_two_byte_commands_are_nops_not_keys() -> None:
    # IP, EC, EL, BRK, NOP, GA: ignored (Linux telnetd makes IP a ^C; BusyBox does not).
    assert BusyboxTelnetd().feed(b"a\xff\xf4b\xff\xf7c\xff\xf8d\xff\xf3\xff\xf1\xff\xf9e") == (b"abcde", b"")


def test_naws_sets_the_window_and_other_subnegotiations_leak_into_the_pty() -> None:
    decoder = BusyboxTelnetd()
    assert decoder.feed(b"\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0") == (b"", b"")
    assert decoder.window == (80, 24)
    # IAC SB TTYPE is skipped as a three-byte command: its body is typed text to BusyBox.
    assert decoder.feed(b"\xff\xfa\x18\x00VT100\xff\xf0") == (b"\x00VT100", b"")


def test_iac_iac_cr_lf_and_cr_nul_within_one_read() -> None:
    decoder = BusyboxTelnetd()
    assert decoder.feed(b"a\xff\xffb\r\nc\r\x00d\re\n") == (b"a\xffb\rc\rd\re\n", b"")
    # Across reads the CR and its LF are two line ends, as in BusyBox.
    assert decoder.feed(b"x\r") == (b"x\r", b"")
    assert decoder.feed(b"\ny") == (b"\ny", b"")


def test_a_lone_iac_waits_for_the_next_read() -> None:
    decoder = BusyboxTelnetd()
    assert decoder.feed(b"ab\xff") == (b"ab", b"")
    assert decoder.feed(b"\xf6cd") == (b"cd", b"\xff\xff\xf1")


def test_an_unknown_command_swallows_the_next_byte() -> None:
    # The garbage probe's FF 6C AE: "IAC 6C" taken for a three-byte command, AE with it.
    assert BusyboxTelnetd().feed(b"\xceU\xffl\xaej") == (b"\xceUj", b"")


# -- the pty's line discipline -------------------------------------------------------------------------


def test_control_characters_echo_as_caret_letters() -> None:
    pty = Pty()
    typed = pty.feed(b"\x1b[A\x00\x08x\n")
    assert typed.echo == b"^[[A^@^Hx\r\n"
    assert typed.items == [("line", b"\x1b[A\x00\x08x", True)]


def test_erase_kill_and_tabs_follow_the_column() -> None:
    pty = Pty()
    pty.write(b"vm login: ")  # column 10
    typed = pty.feed(b"ab\x7f\x02\x7f\tc\x15")
    # DEL: "\b \b"; a ^B takes two columns; a tab goes to column 16 and is backed over without blanking.
    assert typed.echo == b"ab\b \b^B\b \b\b \b" + b" " * 5 + b"c" + b"\b \b" + b"\b" * 5 + b"\b \b"
    assert pty.column == 10 and typed.items == []


def test_signals_flush_the_line_and_the_unwritten_echo() -> None:
    pty = Pty()
    typed = pty.feed(b"\xfc\x1b\x1aab\x03zz")
    assert typed.echo == b"^C"  # ^Z's echo went with the flush ^C made; "zz" never read
    assert typed.items == [("signal", b"INT", False)]
    typed = Pty().feed(b"ab\x1acd\n")
    assert typed.echo == b"^Zcd\r\n" and typed.items == [("signal", b"TSTP", False), ("line", b"cd", True)]


def test_eof_pushes_a_partial_line_or_ends_input() -> None:
    typed = Pty().feed(b"ab\x04cd")
    assert typed.echo == b"abcd" and typed.items == [("line", b"ab", False)]
    assert Pty().feed(b"\x04").items == [("eof", b"", False)]


def test_flow_control_holds_output_until_start() -> None:
    pty = Pty()
    typed = pty.feed(b"a\x13b")
    assert typed.echo == b"a" and pty.write(b"prompt") == b""
    assert pty.feed(b"\x11").echo == b"bprompt"


def test_lnext_quotes_the_next_byte_and_the_line_is_bounded() -> None:
    typed = Pty().feed(b"\x16\x03\n")
    assert typed.echo == b"^\b^C\r\n" and typed.items == [("line", b"\x03", True)]
    typed = Pty().feed(b"A" * (LINE_LIMIT + 10) + b"\n")
    assert typed.dropped == 10 and typed.items == [("line", b"A" * LINE_LIMIT, False)]
    assert typed.echo == b"A" * (LINE_LIMIT + 10) + b"\r\n"


def test_no_echo_for_the_password() -> None:
    pty = Pty()
    pty.echo = False
    typed = pty.feed(b"secret\x7f\n")
    assert typed.echo == b"" and typed.items == [("line", b"secre", True)]


# -- the session: the screens the lab recorded ---------------------------------------------------------


def test_opening_and_login_screen() -> None:
    screen = b"\r\r\nUbuntu 22.04.3 LTS\r\n\r"
    apart = together = 0
    for _ in range(200):
        s = TelnetSession(info(), TelnetConfig(fail_delay=0))
        out = s.start()
        prompt = s.hostname.encode() + b" login: "
        pieces = [data for _, data in out.writes]
        if len(pieces) == 3:  # the requests, the issue a moment later, then login's prompt
            assert pieces == [OPENING, screen, prompt]
            apart += 1
        else:  # now and then login's prompt follows the issue closely enough to share its segment
            assert pieces == [OPENING, screen + prompt]
            together += 1
    assert apart > together > 0  # mostly apart (41 of 50 in the lab)


def test_empty_name_and_lone_eof_as_recorded() -> None:
    s, _ = session()
    assert s.receive(b"\x04").send == b"\r\n" and not s.receive(b"").close  # PAM's newline; login waits
    assert s.receive(b"\r\n").send == b"\r\nPassword: "  # an empty name still gets a password prompt


def test_a_line_past_the_limit_is_echoed_whole_and_read_cut() -> None:
    s, _ = session()
    out = s.receive(b"A" * 5000 + b"\r\n")
    assert out.send == b"A" * 5000 + b"\r\n\r\nPassword: "  # as recorded: echo, newline, PAM's newline


def test_probe_answers_as_recorded_from_busybox() -> None:
    s, _ = session()
    assert s.receive(b"\xff\xf6").send == b"\xff\xff\xf1"
    assert s.receive(b"\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0").send == b""
    assert s.receive(b"\xff\xfd\x01\xff\xfe\x03").send == b""
    out = s.receive(b"\x1b[A\x1b[2J\r\n")
    assert out.send == b"^[[A^[[2J\r\nPassword: "


def test_typed_ahead_lines_are_flushed_at_the_password_prompt() -> None:
    s, _ = session()
    out = s.receive(b"GET / HTTP/1.0\r\n\r\n")
    assert out.send == b"GET / HTTP/1.0\r\n\r\nPassword: " and out.events == []
    out = s.receive(b"x\r\n")
    assert out.send.startswith(b"\r\n\r\nLogin incorrect") and out.events[0][2]["user"] == "GET / HTTP/1.0"


def test_garbage_as_busybox_and_its_pty_take_it() -> None:
    s, _ = session(dst="198.18.0.71")
    out = s.receive(random.Random(15).randbytes(64))
    echo, _, tail = out.send.partition(b"%\r\n")
    assert tail == b"Password: "
    assert echo.startswith(b"^Z\xf7Z\xbc\x08 \x085O\xcd\xfb^B!^Fu\x85e\xf2i\xbc^F\xdcB")
    assert echo.endswith(b"JR^@^\x08^Q^N\xf1V&\xe1^H?^L\xceUj\xb2")


def test_ctrl_c_ends_the_login() -> None:
    s, _ = session()
    out = s.receive(b"\x03")
    assert out.send == b"^C" and out.close


def test_failed_login_waits_as_login_does_then_asks_again() -> None:
    s = TelnetSession(info(), TelnetConfig(accept="none"))
    s.start()
    s.receive(b"root\r\n")
    out = s.receive(b"wrongpass\r\n")
    assert out.send == b"\r\n" and 2.25 <= out.delay <= 3.75  # Debian's FAIL_DELAY, PAM's jitter
    assert out.later == b"\r\nLogin incorrect\r\n" + s.hostname.encode() + b" login: "


def test_weak_policy_is_a_small_set_of_the_hosts_own() -> None:
    sets = []
    for n in range(20, 26):
        s = TelnetSession(info(f"198.18.0.{n}"))
        mine = {pair for pair in TELNET_PAIRS if s.accepts(*pair)}
        assert len(mine) == WEAK_PER_HOST
        assert mine == {pair for pair in TELNET_PAIRS if s.accepts(*pair)}  # the host keeps to it
        assert not s.accepts("root", "not-a-weak-one")
        sets.append(frozenset(mine))
    assert len(set(sets)) > 1


def test_login_with_a_weak_pair_reaches_the_distributions_shell() -> None:
    s = TelnetSession(info(), TelnetConfig(accept="all", fail_delay=0))
    s.start()
    s.receive(b"root\r\n")
    out = s.receive(b"toor\r\n")
    assert s.authenticated and b"BusyBox" not in out.send and out.send.endswith(b"# ")
    out = s.receive(b"echo hi\r\n")
    assert out.send.startswith(b"echo hi\r\nhi\r\n")
