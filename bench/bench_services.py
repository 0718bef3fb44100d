"""Service benchmarks in the lab: the emulated HTTP and SSH servers through the sensor, beside the
very same service functions on a kernel socket, measured in the same run.

- HTTP requests per second with ApacheBench (``ab -n N -c C``, a new connection per request, no
  keep-alive) at concurrency 1 and 50 against a virtual host (``add web tcp port 80 "http"``),
  against ``dynapot.services.http.serve_http`` behind ``asyncio.start_server`` (uvloop, as the
  sensor uses it) in a real lab namespace, and against busybox httpd there for context.
- SSH handshakes per second (version exchange, key exchange, host key; no login) with OpenSSH's
  ``ssh-keyscan -t ed25519`` in a loop for a fixed time at concurrency 1 and 8, against the virtual
  host's ``ssh`` service, against ``make_handler()`` on a kernel socket, and against OpenSSH's
  sshd for context. At concurrency 1 a kernel server's rate suffers from a known stall: the
  client (Nagle on) holds its key exchange init until the server's delayed ACK of its KEXINIT,
  ~40 ms, in some connections; compare medians (``p50_virtual_over_kernel``) for the service's cost.

Everything runs from the lab's attacker namespace; the lab lives in 198.18.0.0/15 only and is torn
down whatever happens. Prints one JSON object per figure. Needs root (it builds its own lab).
The script also runs itself inside the lab: ``--serve`` (the kernel-socket reference server) and
``--keyscan`` (the SSH load client).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynapot.lab import HostSpec, Lab, LabSpec, lab_up
from dynapot.lab.sensor import running_sensor
from dynapot.processes import python_command

THIS = Path(__file__).resolve()
VIRTUAL = "198.18.0.100"
PERSONALITY = "Linux 5.4"  # the virtual host's, and what the reference server tells the services
TEMPLATE = "web"
HTTP_PORT, SSH_PORT = 80, 22  # on the virtual host
KERNEL_HTTP_PORT, KERNEL_SSH_PORT = 8080, 2222  # the same services on a kernel socket
BUSYBOX_PORT = 8081
CLOSED_PORT = 9  # nothing listens there: the reference host's kernel refuses at once
OPENSSH_PORT = 2022  # OpenSSH's sshd on the reference host, for context
CONFIG = f"""
create {TEMPLATE}
set {TEMPLATE} personality "{PERSONALITY}"
set {TEMPLATE} default tcp action reset
add {TEMPLATE} tcp port {HTTP_PORT} "http"
add {TEMPLATE} tcp port {SSH_PORT} "ssh"
bind {VIRTUAL} {TEMPLATE}
"""
# One bare real host: the kernel-socket references run there, started by this script.
LAB_SPEC = LabSpec(hosts=(HostSpec("ref"),))
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself only when started by absolute path
# ssh-keyscan takes no options; OpenSSH 9 prefers sntrup761x25519, whose key generation costs
# the client ~0.2 s. The emulator (asyncssh without liboqs) offers curve25519, so sshd is held to
# the same exchange to compare like with like.
SSHD_KEX = "curve25519-sha256,curve25519-sha256@libssh.org"
READY_TIMEOUT = 30.0
AB_SOCKET_TIMEOUT = 10  # seconds ab waits on one socket
KEYSCAN_TIMEOUT = 5  # seconds ssh-keyscan waits on one host


@dataclass(frozen=True)
class Sizes:
    http_requests: dict[int, int]  # concurrency -> requests per ab run
    http_time_limit: float  # ab's own bound on one run, seconds
    ssh_seconds: float  # duration of one keyscan run
    rounds: int  # repetitions; the median round is reported


QUICK = Sizes({1: 300, 50: 1000}, 20.0, 2.0, 1)
FULL = Sizes({1: 2000, 50: 6000}, 60.0, 8.0, 3)
HTTP_CONCURRENCY = (1, 50)
SSH_CONCURRENCY = (1, 8)


def emit(name: str, value: float | None, unit: str, **extra: object) -> None:
    shown = None if value is None else round(value, 4)
    print(json.dumps({"name": name, "value": shown, "unit": unit, **extra}), flush=True)


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator > 0 else None


# --------------------------------------------------------------------------- reference server (in the lab)


def serve_kernel(address: str, key_dir: Path) -> None:
    """Serve serve_http and ssh.make_handler() on kernel sockets until SIGTERM; print "ready" once up."""
    # Imported here: the benchmark's driver and load client need none of it.
    from dynapot.services.contract import ConnectionInfo, Handler
    from dynapot.services.http import serve_http
    from dynapot.services.ssh import SSHConfig, make_handler

    def no_report(kind: str, detail: str | None, data: dict[str, Any] | None) -> None:
        pass

    def adapter(service: Handler) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        """What the sensor's start_handler does for a service, over a kernel socket instead."""

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer, own = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
            info = ConnectionInfo("tcp", peer[0], peer[1], own[0], own[1], PERSONALITY, TEMPLATE)
            try:
                await service(reader, writer, info, no_report)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                pass
            except Exception:
                logging.exception("service failed")
            finally:
                writer.close()

        return on_connect

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        ssh = make_handler(SSHConfig(key_dir=key_dir))
        servers = [
            await asyncio.start_server(adapter(serve_http), address, KERNEL_HTTP_PORT, backlog=4096),
            await asyncio.start_server(adapter(ssh), address, KERNEL_SSH_PORT, backlog=4096),
        ]
        print("ready", flush=True)
        await stop.wait()
        for server in servers:
            server.close()

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


@contextlib.contextmanager
def in_lab(
    lab: Lab, host: str, argv: list[str], output: Path, ready_line: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A process of ours in a lab namespace, ended (by its own pid) whatever happens.

    Its output goes to a file, not a pipe: nobody reads a pipe during the load, and a full one
    would stall the server under test.
    """
    with output.open("w") as out:
        process = lab.popen(host, argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while ready_line is not None and ready_line not in output.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} in {host} did not start: {output.read_text()[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def sshd_command(address: str, workdir: Path) -> list[str]:
    """OpenSSH's sshd with one ed25519 host key and the emulator's key exchange: a banner, no logins."""
    workdir.mkdir(mode=0o755)
    key = workdir / "ssh_host_ed25519_key"
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@ref", "-f", str(key)]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
    config = workdir / "sshd_config"
    lines = [
        f"Port {OPENSSH_PORT}",
        f"ListenAddress {address}",
        f"HostKey {key}",
        f"KexAlgorithms {SSHD_KEX}",
        "PidFile none",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthorizedKeysFile none",
        "MaxStartups 100:30:200",  # the default 10 would refuse part of the load at high concurrency
        "LogLevel INFO",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # Debian's sshd insists on it
    return [SSHD, "-D", "-e", "-f", str(config)]


def wait_http(lab: Lab, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while lab.exec(lab.attacker, ["curl", "-s", "-o", "/dev/null", "-m", "2", url], timeout=10).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer")
        time.sleep(0.1)


# --------------------------------------------------------------------------- HTTP with ab

AB_FIGURES = {
    "complete": r"Complete requests:\s+(\d+)",
    "failed": r"Failed requests:\s+(\d+)",
    "non_2xx": r"Non-2xx responses:\s+(\d+)",
    "seconds": r"Time taken for tests:\s+([\d.]+) seconds",
    "rate": r"Requests per second:\s+([\d.]+) \[#/sec\] \(mean\)",
    "mean_ms": r"Time per request:\s+([\d.]+) \[ms\] \(mean\)\n",
    "p50_ms": r"\n\s+50%\s+(\d+)",
    "p99_ms": r"\n\s+99%\s+(\d+)",
}


def ab(lab: Lab, url: str, requests: int, concurrency: int, time_limit: float) -> dict[str, float]:
    """One ab run; -r keeps it going past socket errors, which then count as failed requests."""
    # -t first: it implies -n 50000, and the -n after it takes over (ab reads options in order).
    argv = ["ab", "-q", "-r", "-s", str(AB_SOCKET_TIMEOUT), "-t", str(int(time_limit))]
    argv += ["-n", str(requests), "-c", str(concurrency), url]
    result = lab.exec(lab.attacker, argv, timeout=time_limit + 30)
    figures: dict[str, float] = {}
    for key, pattern in AB_FIGURES.items():
        match = re.search(pattern, result.stdout)
        if match:
            figures[key] = float(match.group(1))
    if "rate" not in figures:
        raise RuntimeError(f"ab said: {result.stdout[-1500:]} {result.stderr[-1500:]}")
    figures.setdefault("non_2xx", 0.0)
    return figures


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate, whole (its failures and times belong to it)."""
    return sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]


def bench_http(lab: Lab, sizes: Sizes, reference: str) -> int:
    """Returns how many requests the virtual host answered, to compare with the events recorded."""
    targets = {
        "virtual": f"http://{VIRTUAL}:{HTTP_PORT}/",
        "kernel": f"http://{reference}:{KERNEL_HTTP_PORT}/",
        "busybox": f"http://{reference}:{BUSYBOX_PORT}/",
    }
    sent = 0
    for name, url in targets.items():  # warm-up: ARP, the lazily built host stack, imports
        wait_http(lab, url)
        warm = ab(lab, url, 100, 10, sizes.http_time_limit)
        sent += 1 + int(warm["complete"]) if name == "virtual" else 0  # curl's request, then ab's
    for concurrency in HTTP_CONCURRENCY:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(sizes.rounds):
            # Interleaved, so that drift in the machine's load hits every target alike.
            for name, url in targets.items():
                run = ab(lab, url, sizes.http_requests[concurrency], concurrency, sizes.http_time_limit)
                runs[name].append(run)
        sent += sum(int(run["complete"]) for run in runs["virtual"])
        best = {name: median_run(r) for name, r in runs.items()}
        emit(
            f"http_requests_per_s_c{concurrency}",
            best["virtual"]["rate"],
            "1/s",
            rounds=sizes.rounds,
            **best,
            kernel_over_virtual=ratio(best["kernel"]["rate"], best["virtual"]["rate"]),
            busybox_over_virtual=ratio(best["busybox"]["rate"], best["virtual"]["rate"]),
        )
        emit(
            f"http_mean_ms_per_request_c{concurrency}",
            best["virtual"]["mean_ms"],
            "ms",
            kernel_ms=best["kernel"]["mean_ms"],
            busybox_ms=best["busybox"]["mean_ms"],
            failed=int(best["virtual"]["failed"]),
            kernel_failed=int(best["kernel"]["failed"]),
        )
    return sent


# --------------------------------------------------------------------------- SSH with ssh-keyscan


def keyscan_load(host: str, port: int, seconds: float, workers: int) -> dict[str, Any]:
    """`workers` loops of ssh-keyscan for `seconds`: each run is one complete handshake or a failure."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[float] = []
    argv = ["ssh-keyscan", "-T", str(KEYSCAN_TIMEOUT), "-t", "ed25519", "-p", str(port), host]

    def work() -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                result = subprocess.run(argv, capture_output=True, timeout=KEYSCAN_TIMEOUT + 5, check=False)
                # The host key line is printed only after the server's signed key exchange reply.
                good = b" ssh-ed25519 " in result.stdout
            except subprocess.TimeoutExpired:
                good = False
            took = time.monotonic() - began
            with lock:
                (latencies if good else failures).append(took)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies) or [0.0]
    return {
        "handshakes": len(latencies),
        "failed": len(failures),
        "seconds": round(elapsed, 3),
        "rate": round(len(latencies) / elapsed, 2),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "failed_p50_ms": round(statistics.median(failures) * 1000, 2) if failures else None,
    }


def kex_used(lab: Lab, host: str, port: int) -> str | None:
    """The key exchange method ssh-keyscan and the server agree on (from its debug output)."""
    argv = ["ssh-keyscan", "-v", "-T", str(KEYSCAN_TIMEOUT), "-t", "ed25519", "-p", str(port), host]
    result = lab.exec(lab.attacker, argv, timeout=KEYSCAN_TIMEOUT + 10)
    match = re.search(r"kex: algorithm: (\S+)", result.stderr)
    return match.group(1) if match else None


def keyscan(lab: Lab, host: str, port: int, seconds: float, workers: int) -> dict[str, Any]:
    argv = [*python_command(), str(THIS), "--keyscan", host, str(port), str(seconds), str(workers)]
    result = lab.exec(lab.attacker, argv, timeout=seconds + KEYSCAN_TIMEOUT + 60)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"keyscan said: {result.stdout[-1500:]} {result.stderr[-1500:]}") from None


def bench_ssh(lab: Lab, sizes: Sizes, reference: str) -> None:
    targets = {
        "virtual": (VIRTUAL, SSH_PORT),
        "kernel": (reference, KERNEL_SSH_PORT),
        "openssh": (reference, OPENSSH_PORT),
    }
    kex = {}
    for name, (host, port) in targets.items():  # warm-up, and the host key created on first contact
        warm = keyscan(lab, host, port, 1.0, 2)
        if not warm["handshakes"]:
            raise RuntimeError(f"no SSH handshake with {name} {host}:{port}: {warm}")
        kex[name] = kex_used(lab, host, port)
    # The client's own cost per handshake: ssh-keyscan started and refused at once (closed port).
    floor = keyscan(lab, reference, CLOSED_PORT, 1.0, 1)["failed_p50_ms"]
    for concurrency in SSH_CONCURRENCY:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(sizes.rounds):
            for name, (host, port) in targets.items():
                runs[name].append(keyscan(lab, host, port, sizes.ssh_seconds, concurrency))
        best = {name: median_run(r) for name, r in runs.items()}
        emit(
            f"ssh_handshakes_per_s_c{concurrency}",
            best["virtual"]["rate"],
            "1/s",
            rounds=sizes.rounds,
            client="ssh-keyscan -t ed25519, one process per handshake",
            kex=kex,
            client_floor_ms=floor,
            **best,
            kernel_over_virtual=ratio(best["kernel"]["rate"], best["virtual"]["rate"]),
            openssh_over_virtual=ratio(best["openssh"]["rate"], best["virtual"]["rate"]),
            p50_virtual_over_kernel=ratio(best["virtual"]["p50_ms"], best["kernel"]["p50_ms"]),
        )


# --------------------------------------------------------------------------- driver


PARTS = ("http", "ssh")


def run(sizes: Sizes, parts: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp, lab_up(LAB_SPEC) as lab:
        workdir = Path(tmp)
        ref = lab.real_hosts[0]
        reference = str(ref.ip)
        www = workdir / "www"
        www.mkdir()
        # About the size of the emulated page, so the references move the same bytes.
        (www / "index.html").write_text(
            "<!DOCTYPE html><html><head><title>Apache2 Ubuntu Default Page: It works</title></head><body>"
            "<h1>Apache2 Ubuntu Default Page: It works</h1><p>ref</p>" + "<!-- -->" * 30 + "</body></html>"
        )
        keys = workdir / "keys"
        sensor_dir = workdir / "sensor"
        sensor_dir.mkdir()
        www.chmod(0o755)
        workdir.chmod(0o755)
        serve = [*python_command(), str(THIS), "--serve", reference, str(keys)]
        busybox = ["busybox", "httpd", "-f", "-p", f"{reference}:{BUSYBOX_PORT}", "-h", str(www)]
        sshd = sshd_command(reference, workdir / "openssh")
        with (
            in_lab(lab, ref.name, serve, workdir / "kernel.out", ready_line="ready"),
            in_lab(lab, ref.name, busybox, workdir / "busybox.out"),
            in_lab(lab, ref.name, sshd, workdir / "sshd.out", ready_line="Server listening"),
            running_sensor(lab, CONFIG, sensor_dir) as sensor,
        ):
            started = time.monotonic()
            sent = bench_http(lab, sizes, reference) if "http" in parts else 0
            if "ssh" in parts:
                bench_ssh(lab, sizes, reference)
            took = time.monotonic() - started
        if sent:
            # Read after the sensor stopped: its event writer has flushed everything by then.
            recorded = len(sensor.events("request"))
            emit("http_requests_recorded", recorded, "events", answered=sent, lost=max(0, sent - recorded))
        # The machine may be shared: its load says how far to trust the figures.
        emit("measuring_time", took, "s", load_average=[round(x, 2) for x in os.getloadavg()])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in under 2 minutes")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    parser.add_argument("--serve", nargs=2, metavar=("ADDRESS", "KEY_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--keyscan", nargs=4, metavar=("HOST", "PORT", "S", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_kernel(args.serve[0], Path(args.serve[1]))
    elif args.keyscan:
        host, port, seconds, workers = args.keyscan
        print(json.dumps(keyscan_load(host, int(port), float(seconds), int(workers))), flush=True)
    else:
        run(QUICK if args.quick else FULL, tuple(args.only or PARTS))


if __name__ == "__main__":
    main()
