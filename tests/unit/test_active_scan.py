"""Tests for the active scanner: command lines, option and target validation, and runs of
the real nmap (loopback only) and of fake nmap scripts that fail, hang or log their timing."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import needs_nmap, tcp_server

from dynapot.discovery.active import (
    MAX_ADDRESSES,
    ActiveScanError,
    NmapFailedError,
    NmapNotFoundError,
    NmapOutputError,
    ScanCancel,
    ScanCancelledError,
    ScanOptions,
    ScanProgress,
    build_nmap_command,
    build_sweep_command,
    parse_targets,
    run_scan,
)

# --- build_nmap_command ------------------------------------------------------------------------


def test_default_command() -> None:
    cmd = build_nmap_command("198.18.0.5", ScanOptions())
    assert cmd == [
        "nmap",
        "-n",
        "-Pn",
        "-T3",
        "-sV",
        "-O",
        "--osscan-guess",
        "--top-ports",
        "100",
        "--host-timeout",
        "300s",
        "-oX",
        "-",
        "198.18.0.5",
    ]


def test_polite_uses_t2_and_normal_t3() -> None:
    polite = build_nmap_command("198.18.0.5", ScanOptions(polite=True))
    normal = build_nmap_command("198.18.0.5", ScanOptions(polite=False))
    assert "-T2" in polite and "-T3" not in polite
    assert "-T3" in normal and "-T2" not in normal


def test_detection_switches() -> None:
    neither = build_nmap_command("198.18.0.5", ScanOptions(os_detection=False, version_detection=False))
    assert "-O" not in neither and "-sV" not in neither
    only_os = build_nmap_command("198.18.0.5", ScanOptions(version_detection=False))
    assert "-O" in only_os and "-sV" not in only_os


def test_ports_and_timeouts() -> None:
    cmd = build_nmap_command(
        "198.18.0.5", ScanOptions(ports="22,80,8000-8100", host_timeout=1.5, max_retries=2)
    )
    assert cmd[cmd.index("-p") + 1] == "22,80,8000-8100"
    assert "--top-ports" not in cmd
    assert cmd[cmd.index("--host-timeout") + 1] == "1500ms"
    assert cmd[cmd.index("--max-retries") + 1] == "2"


def test_nmap_path_interface_and_extra_args() -> None:
    options = ScanOptions(nmap_path="/opt/nmap/bin/nmap", interface="eth0", extra_args=["--script", "banner"])
    cmd = build_nmap_command("198.18.0.5", options)
    assert cmd[0] == "/opt/nmap/bin/nmap"
    assert cmd[cmd.index("-e") + 1] == "eth0"
    # Extra arguments come before our output option and the target, so they cannot replace them.
    assert cmd[-5:] == ["--script", "banner", "-oX", "-", "198.18.0.5"]
    assert options.extra_args == ("--script", "banner")


def test_ipv6_target() -> None:
    cmd = build_nmap_command("2001:DB8::1", ScanOptions())
    assert "-6" in cmd
    assert cmd[-1] == "2001:db8::1"


@pytest.mark.parametrize(
    "target", ["198.18.0.0/24", "host.example", "-oN/tmp/x", "198.18.0.1 198.18.0.2", ""]
)
def test_detail_command_takes_one_address(target: str) -> None:
    with pytest.raises(ValueError, match="not a single IPv4/IPv6 address"):
        build_nmap_command(target, ScanOptions())


def test_sweep_command() -> None:
    cmd = build_sweep_command(["198.18.0.0/24", "198.18.1.7"], ScanOptions(polite=True))
    assert cmd == ["nmap", "-sn", "-n", "-T2", "-oX", "-", "198.18.0.0/24", "198.18.1.7"]
    assert "-6" in build_sweep_command(["2001:2::/120"], ScanOptions())
    with pytest.raises(ValueError, match="one IP version"):
        build_sweep_command(["198.18.0.1", "2001:2::1"], ScanOptions())


# --- ScanOptions validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"parallel": 0}, "parallel"),
        ({"parallel": -3}, "parallel"),
        ({"parallel": 1.5}, "parallel"),
        ({"parallel": True}, "parallel"),
        ({"parallel": 100_000}, "parallel"),
        ({"interval": -1}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"interval": float("inf")}, "interval"),
        ({"interval": "1"}, "interval"),
        ({"host_timeout": 0}, "host_timeout"),
        ({"host_timeout": -5}, "host_timeout"),
        ({"host_timeout": float("inf")}, "host_timeout"),
        ({"polite": "yes"}, "polite"),
        ({"os_detection": 1}, "os_detection"),
        ({"ports": ""}, "ports"),
        ({"ports": "ssh"}, "ports"),
        ({"ports": "22, 80"}, "ports"),
        ({"ports": "70000"}, "ports"),
        ({"ports": "100-20"}, "ports"),
        ({"ports": "22,,80"}, "ports"),
        ({"ports": "-sV"}, "ports"),
        ({"nmap_path": ""}, "nmap_path"),
        ({"max_retries": -1}, "max_retries"),
        ({"interface": "-e"}, "interface"),
        ({"interface": "eth0 eth1"}, "interface"),
        ({"max_addresses": 0}, "max_addresses"),
        ({"extra_args": "-sU"}, "extra_args"),
        ({"extra_args": ("-oN", "/tmp/out")}, "extra_args"),
        ({"extra_args": ("-iR", "1000")}, "extra_args"),
        ({"extra_args": ("-iL", "hosts.txt")}, "extra_args"),
    ],
)
def test_bad_options(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ScanOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("ports", ["22", "1-1024", "T:22,80,U:53", "-", "60000-", "-1024", "0"])
def test_good_ports(ports: str) -> None:
    assert ScanOptions(ports=ports).ports == ports


def test_options_are_frozen() -> None:
    options = ScanOptions()
    with pytest.raises(AttributeError):
        options.parallel = 2  # type: ignore[misc]


def test_process_timeout_exceeds_host_timeout() -> None:
    assert ScanOptions(host_timeout=1).process_timeout > 1
    assert ScanOptions(host_timeout=300).process_timeout > 300


# --- target validation -------------------------------------------------------------------------


def test_targets_are_merged() -> None:
    networks = parse_targets(
        ["198.18.0.0/25", "198.18.0.128/25", "198.18.0.7", "2001:2::1", " 198.19.2.9/24 "]
    )
    assert [str(n) for n in networks] == ["198.18.0.0/24", "198.19.2.0/24", "2001:2::1/128"]


@pytest.mark.parametrize("token", ["host.example", "198.18.0.1-5", "-oX", "", "198.18.0.0/33", "300.1.1.1"])
def test_bad_target_is_named(token: str) -> None:
    with pytest.raises(ValueError, match=f"target {token!r}"):
        parse_targets(["198.18.0.1", token])


def test_target_cap() -> None:
    assert sum(n.num_addresses for n in parse_targets(["198.18.0.0/16"])) == MAX_ADDRESSES
    with pytest.raises(ValueError, match="131072 addresses, more than the limit of 65536"):
        parse_targets(["198.18.0.0/15"])
    with pytest.raises(ValueError, match="limit of 16"):
        parse_targets(["198.18.0.0/24"], max_addresses=16)
    with pytest.raises(ValueError, match="limit"):
        parse_targets(["2001:2::/64"])


def test_targets_must_be_a_sequence() -> None:
    with pytest.raises(TypeError):
        parse_targets("198.18.0.1")
    with pytest.raises(ValueError, match="no targets"):
        parse_targets([])


def test_run_scan_validates_targets_before_running_anything(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'evil; rm -rf /'"):
        run_scan(["127.0.0.1", "evil; rm -rf /"], ScanOptions(nmap_path=str(tmp_path / "nope")))


# --- the real nmap, on loopback only -----------------------------------------------------------


SSH_BANNER = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n"


@pytest.fixture
def ssh_like_server() -> Iterator[int]:
    with tcp_server(SSH_BANNER) as port:
        yield port


@needs_nmap
def test_real_scan_of_loopback(ssh_like_server: int) -> None:
    port = ssh_like_server
    reports: list[ScanProgress] = []
    options = ScanOptions(os_detection=False, ports=str(port), host_timeout=60)
    result = run_scan(["127.0.0.1"], options, reports.append)

    assert result.errors == {}
    assert result.timed_out == ()
    assert result.live_hosts == ("127.0.0.1",)
    (obs,) = result.observations
    assert obs.ip == "127.0.0.1" and obs.alive and obs.tool == "nmap"
    (found,) = [p for p in obs.ports if p.port == port]
    assert (found.protocol, found.state, found.service) == ("tcp", "open", "ssh")
    assert found.product == "OpenSSH"
    assert found.version is not None and "8.9p1" in found.version

    assert ScanProgress("sweep", 1, 1) in reports
    assert reports[-1] == ScanProgress("detail", 1, 1, "127.0.0.1")
    assert [r.phase for r in reports] == sorted((r.phase for r in reports), key=["sweep", "detail"].index)


# --- errors, with fake nmaps -------------------------------------------------------------------


def sweep_xml(*hosts: str, mac: str | None = "02:00:00:AA:BB:CC") -> str:
    mac_el = f'<address addr="{mac}" addrtype="mac" vendor="Fake Vendor"/>' if mac else ""
    body = "".join(
        f'<host><status state="up" reason="arp-response" reason_ttl="0"/>'
        f'<address addr="{h}" addrtype="ipv4"/>{mac_el}<hostnames/></host>'
        for h in hosts
    )
    return (
        '<?xml version="1.0"?><nmaprun scanner="nmap" args="fake" start="1700000000" version="7.93"'
        f' xmloutputversion="1.05">{body}<runstats><finished time="1700000001" elapsed="1"'
        ' exit="success"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>'
    )


def detail_xml_shell() -> str:
    """Shell that prints a detailed-scan result for "$ip" with port 22 open and no MAC."""
    return (
        "cat <<EOF\n"
        '<?xml version="1.0"?><nmaprun scanner="nmap" args="fake" start="1700000002" version="7.93"'
        ' xmloutputversion="1.05"><host starttime="1700000002" endtime="1700000003">'
        '<status state="up" reason="user-set" reason_ttl="0"/><address addr="$ip" addrtype="ipv4"/>'
        '<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/>'
        '<service name="ssh"/></port></ports></host><runstats><finished time="1700000003" elapsed="1"'
        ' exit="success"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>\n'
        "EOF\n"
    )


def fake_nmap(tmp_path: Path, sweep: str, detail: str) -> str:
    """Write an executable fake nmap: `sweep` (shell) runs for -sn, `detail` otherwise.

    The detail part sees the target in $ip. Nothing here touches the network.
    """
    script = tmp_path / "fake-nmap"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do ip="$a"; done\n'
        'case " $* " in\n'
        f'*" -sn "*)\n{sweep}\n;;\n'
        f"*)\n{detail}\n;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def sweep_shell(*hosts: str) -> str:
    return f"cat <<'EOF'\n{sweep_xml(*hosts)}\nEOF"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie nobody reaped yet (PID 1 in a container may not) is dead for our purpose.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_all_dead(pids: list[int], within: float = 10.0) -> list[int]:
    """Pids still alive after `within` seconds (a generous bound: killing takes milliseconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def hanging_detail(pidfile: Path) -> str:
    """Shell for a detailed scan that never ends, with a child that even ignores SIGTERM."""
    lines = [
        f'echo $$ >> "{pidfile}"',
        "(trap '' TERM; exec sleep 100000) &",
        f'echo $! >> "{pidfile}"',
        "wait",
    ]
    return "\n".join(lines) + "\n"


def test_missing_nmap(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-nmap")
    with pytest.raises(NmapNotFoundError) as info:
        run_scan(["127.0.0.1"], ScanOptions(nmap_path=missing))
    assert missing in str(info.value)
    assert "install nmap" in str(info.value)
    assert isinstance(info.value, ActiveScanError)


def test_failing_nmap(tmp_path: Path) -> None:
    script = tmp_path / "nmap"
    script.write_text("#!/bin/sh\necho 'Failed to open device eth7' >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(NmapFailedError) as info:
        run_scan(["127.0.0.1"], ScanOptions(nmap_path=str(script)))
    assert info.value.returncode == 1
    assert info.value.stderr == "Failed to open device eth7"
    assert "Failed to open device eth7" in str(info.value)


def test_garbage_output_is_an_error(tmp_path: Path) -> None:
    nmap = fake_nmap(tmp_path, sweep="echo '<nmaprun><host>'", detail="exit 0")
    with pytest.raises(NmapOutputError, match="ends early"):
        run_scan(["127.0.0.1"], ScanOptions(nmap_path=nmap))


def test_detail_supersedes_sweep_but_keeps_its_mac(tmp_path: Path) -> None:
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2"), detail_xml_shell())
    result = run_scan(["127.0.0.0/30"], ScanOptions(nmap_path=nmap))
    assert [o.ip for o in result.observations] == ["127.0.0.1", "127.0.0.2"]
    for obs in result.observations:
        assert [(p.port, p.state, p.service) for p in obs.ports] == [(22, "open", "ssh")]
        assert (obs.mac, obs.mac_vendor) == ("02:00:00:AA:BB:CC", "Fake Vendor")


def test_failed_host_is_reported_and_keeps_the_sweep_observation(tmp_path: Path) -> None:
    detail = 'if [ "$ip" = 127.0.0.2 ]; then echo "boom on $ip" >&2; exit 3; fi\n' + detail_xml_shell()
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2"), detail)
    result = run_scan(["127.0.0.0/30"], ScanOptions(nmap_path=nmap))
    assert list(result.errors) == ["127.0.0.2"]
    error = result.errors["127.0.0.2"]
    assert isinstance(error, NmapFailedError)
    assert error.returncode == 3 and error.stderr == "boom on 127.0.0.2"
    by_ip = {o.ip: o for o in result.observations}
    assert by_ip["127.0.0.1"].ports != ()
    assert by_ip["127.0.0.2"].ports == ()  # the sweep's observation
    assert by_ip["127.0.0.2"].mac == "02:00:00:AA:BB:CC"


def test_hanging_nmap_times_out_and_leaves_nothing_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1"), hanging_detail(pidfile))
    options = ScanOptions(nmap_path=nmap, host_timeout=1)
    started = time.monotonic()
    result = run_scan(["127.0.0.1"], options)
    elapsed = time.monotonic() - started

    assert elapsed < 60, "run_scan did not bound a hanging nmap"
    assert result.timed_out == ("127.0.0.1",)
    assert result.errors == {}
    (obs,) = result.observations
    assert obs.alive and obs.mac == "02:00:00:AA:BB:CC"  # the sweep's observation remains
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 2
    assert wait_all_dead(pids) == []


def test_nmap_own_host_timeout_is_reported(tmp_path: Path) -> None:
    detail = detail_xml_shell().replace("<host starttime", '<host timedout="true" starttime')
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1"), detail)
    result = run_scan(["127.0.0.1"], ScanOptions(nmap_path=nmap))
    assert result.timed_out == ("127.0.0.1",)
    (obs,) = result.observations
    assert obs.ports == ()  # nmap's partial result is not trusted over the sweep's


def test_keyboard_interrupt_kills_running_nmaps(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2"), hanging_detail(pidfile))
    options = ScanOptions(nmap_path=nmap, host_timeout=1000, parallel=2)
    main = threading.get_ident()

    def interrupt_once_both_run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if pidfile.exists() and len(pidfile.read_text().split()) >= 4:
                break
            time.sleep(0.05)
        # Aimed at the main thread, as Ctrl-C would be handled there.
        signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_both_run, daemon=True)
    interrupter.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_scan(["127.0.0.0/30"], options)
    interrupter.join(timeout=5)
    assert time.monotonic() - started < 60, "Ctrl-C waited for the scans instead of killing them"
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 4
    assert wait_all_dead(pids) == []


def test_batches_of_n_with_interval_between(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # Host .2 is slow: with batches, .3 starts only after the whole first batch is done
    # (a sliding window would start it as soon as .1 finished).
    detail = (
        f'echo "start $ip $(date +%s.%N)" >> "{log}"\n'
        'if [ "$ip" = 127.0.0.2 ]; then sleep 1; fi\n'
        f'echo "end $ip $(date +%s.%N)" >> "{log}"\n' + detail_xml_shell()
    )
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2", "127.0.0.3"), detail)
    reports: list[ScanProgress] = []
    result = run_scan(["127.0.0.0/30"], ScanOptions(nmap_path=nmap, parallel=2, interval=0.5), reports.append)

    assert len(result.observations) == 3 and result.errors == {}
    events = [line.split() for line in log.read_text().splitlines()]
    order = [f"{kind} {ip}" for kind, ip, _ in events]
    assert order.index("start 127.0.0.3") > order.index("end 127.0.0.2")
    assert order.index("start 127.0.0.3") > order.index("end 127.0.0.1")
    times = {f"{kind} {ip}": float(t) for kind, ip, t in events}
    assert times["start 127.0.0.3"] - times["end 127.0.0.2"] >= 0.5  # the interval D (a lower bound)

    detail_reports = [r for r in reports if r.phase == "detail"]
    assert [r.done for r in detail_reports] == [0, 1, 2, 3]
    assert {r.total for r in detail_reports} == {3}
    assert {r.current for r in detail_reports[1:]} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


# --- stopping a scan from another thread (the daemon's mode, network or stop) -----------------


def cancel_when(cancel: ScanCancel, ready, reason: str = "mode turned passive") -> threading.Thread:
    """Cancel from another thread once `ready()` holds (bounded wait), as the daemon would."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ready():
            time.sleep(0.05)
        cancel.cancel(reason)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def pids_in(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []


def test_a_cancelled_scan_kills_every_nmap_and_keeps_only_the_hosts_that_finished(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    detail = f'if [ "$ip" = 127.0.0.2 ]; then\n{hanging_detail(pidfile)}fi\n' + detail_xml_shell()
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2"), detail)
    cancel = ScanCancel()
    reports: list[ScanProgress] = []
    canceller = cancel_when(
        cancel, lambda: len(pids_in(pidfile)) >= 2 and any(r.current == "127.0.0.1" for r in reports)
    )
    with pytest.raises(ScanCancelledError) as info:
        run_scan(
            ["127.0.0.0/30"],
            ScanOptions(nmap_path=nmap, parallel=2, host_timeout=1000),
            reports.append,
            cancel=cancel,
        )
    canceller.join(timeout=30)
    stopped = info.value
    assert stopped.reason == "mode turned passive" and "mode turned passive" in str(stopped)
    assert [o.ip for o in stopped.partial.observations] == ["127.0.0.1"]  # its nmap ran to its end
    assert stopped.partial.observations[0].ports  # the detailed result, not the sweep's
    assert stopped.partial.live_hosts == ("127.0.0.1", "127.0.0.2")
    assert stopped.unscanned == ("127.0.0.2",)  # killed: nothing of it is kept
    pids = pids_in(pidfile)
    assert len(pids) == 2  # the nmap and its child that ignores SIGTERM
    assert wait_all_dead(pids, within=1.0) == []  # cancel returns once they are killed


def test_a_scan_cancelled_in_its_sweep_keeps_nothing(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    nmap = fake_nmap(tmp_path, hanging_detail(pidfile), detail_xml_shell())
    cancel = ScanCancel()
    canceller = cancel_when(cancel, lambda: len(pids_in(pidfile)) >= 2, "the daemon stops")
    with pytest.raises(ScanCancelledError) as info:
        run_scan(["127.0.0.0/30"], ScanOptions(nmap_path=nmap), cancel=cancel)
    canceller.join(timeout=30)
    assert info.value.partial.observations == () and info.value.partial.live_hosts == ()
    assert info.value.reason == "the daemon stops"
    assert wait_all_dead(pids_in(pidfile), within=1.0) == []


def test_a_scan_cancelled_before_it_starts_runs_no_nmap(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    nmap = fake_nmap(tmp_path, f'touch "{ran}"\n' + sweep_shell("127.0.0.1"), detail_xml_shell())
    cancel = ScanCancel()
    assert cancel.cancel("networks changed") == 0 and cancel.cancelled
    with pytest.raises(ScanCancelledError, match="networks changed"):
        run_scan(["127.0.0.1"], ScanOptions(nmap_path=nmap), cancel=cancel)
    assert not ran.exists()


def test_a_cancel_cuts_the_pause_between_batches_short(tmp_path: Path) -> None:
    nmap = fake_nmap(tmp_path, sweep_shell("127.0.0.1", "127.0.0.2"), detail_xml_shell())
    cancel = ScanCancel()
    reports: list[ScanProgress] = []
    canceller = cancel_when(cancel, lambda: any(r.current == "127.0.0.1" for r in reports))
    started = time.monotonic()
    with pytest.raises(ScanCancelledError) as info:
        # D = an hour: only the cancel can end this scan before the test's timeout.
        options = ScanOptions(nmap_path=nmap, parallel=1, interval=3600)
        run_scan(["127.0.0.0/30"], options, reports.append, cancel=cancel)
    canceller.join(timeout=30)
    assert time.monotonic() - started < 600, "the pause D was not cut short"
    assert [o.ip for o in info.value.partial.observations] == ["127.0.0.1"]
    assert info.value.unscanned == ("127.0.0.2",)
