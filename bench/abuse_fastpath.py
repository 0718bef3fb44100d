"""Abuse checks for the sensor's C receive thread (dynapot._fastpath), one JSON line per check.

Every byte the thread reads comes from the wire unchecked, and the sensor drives its API from
Python: neither may crash the process or grow it without bound.

- `decisions`: N fuzzed frames (default 10^6) through `Responder.answer()`, the thread's decision
  for a frame without IO, while the address table churns (binds, unbinds, reservations, echo and
  SYN recipes replaced, SYNs forgotten, probe windows, networks). Frames: valid ARP requests,
  replies, probes and announcements, pings, SYNs with options, other TCP, UDP, IPv4 from our
  addresses with other MACs, VLAN tags, random bytes; then mutated: bytes changed, cut short,
  extended, IP total length / header length / TCP data offset set at random, checksums
  broken, the ethertype changed. It runs in a child process, restarted after a crash (a
  crash: the child killed by a signal); RSS of the child after its warm-up and at the end.
- `thread`: the same frames through the real thread: an AF_PACKET socket on the loopback of a
  private network namespace (`unshare -n`, root only), frames sent there, read, decided, queued
  and taken by Python; crashes, frames received, RSS growth.
- `misuse`: the API used wrongly, each case in its own child: objects never initialised or
  initialised twice, an initialisation that fails, an uninitialised ISN generator in a recipe,
  non-finite clock rates. A case fails by a crash, a hang, or damage (a descriptor it does not
  own closed, descriptors leaked, a bad value accepted).
- `valgrind` (with --valgrind N): the decision soak of N frames and the misuse cases under
  valgrind memcheck (PYTHONMALLOC=malloc); errors whose stack passes through _fastpath.

    python bench/abuse_fastpath.py [--frames 1000000] [--valgrind 20000] [--no-thread]

Prints {"check": ..., "pass": ..., figures}; exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from dynapot._fastpath import Responder

from dynapot.netstack.packets import (
    build_arp_frame,
    build_icmp,
    build_ipv4,
    build_tcp_packet,
    build_udp_packet,
)

HERE = Path(__file__).resolve()
BASE = 0xC6120064  # 198.18.0.100: the pool of addresses the table churns over
POOL = 64
PEER = 0xC6120003
PEER_MAC = bytes.fromhex("020000000003")
STRANGER_MAC = bytes.fromhex("020000000099")
ROUTER_MAC = bytes.fromhex("0200000000fe")
BROADCAST = b"\xff" * 6
OSDB = Path("/usr/share/nmap/nmap-os-db")
CHUNK_PROGRESS = 1000  # a child notes its progress this often (a restart resumes from there)
RSS_LIMIT_MB = 16.0
SOL_PACKET, PACKET_STATISTICS = 263, 6
THREAD_FIGURES = (
    "sent",
    "received",
    "taken",
    "dropped",
    "kernel_drops",
)  # growth allowed over a soak (the SYN memory and the table are allocated up front)


def emit(check: str, passed: bool, **figures: object) -> None:
    print(json.dumps({"check": check, "pass": passed, **figures}), flush=True)


def mac_of(ip: int) -> bytes:
    return b"\x02\xc6" + ip.to_bytes(4, "big")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------------------------- frames


def seed_frame(rng: random.Random) -> bytes:
    """A well-formed frame the thread has a rule for (or one it must ignore)."""
    host = BASE + rng.randrange(POOL)
    other = BASE + rng.randrange(POOL)
    vmac = mac_of(host)
    src_mac = rng.choice([PEER_MAC, STRANGER_MAC, ROUTER_MAC, mac_of(other), rng.randbytes(6)])
    src = rng.choice([PEER, PEER + 1, other, 0, 0xFFFFFFFF, 0xE0000001, 0x7F000001, 0x08080808])
    kind = rng.randrange(12)
    if kind == 0:  # who-has
        return build_arp_frame(BROADCAST, 1, src_mac, src, bytes(6), host)
    if kind == 1:  # probe
        return build_arp_frame(BROADCAST, 1, src_mac, 0, bytes(6), host)
    if kind == 2:  # announcement, gratuitous reply, or a reply to a probe of ours
        op = rng.choice([1, 2])
        return build_arp_frame(
            rng.choice([BROADCAST, vmac]), op, src_mac, host, rng.choice([vmac, bytes(6)]), host
        )
    if kind == 3:  # a reply to someone
        return build_arp_frame(PEER_MAC, 2, src_mac, host, PEER_MAC, PEER)
    if kind == 4:  # ping
        icmp = build_icmp(8, rng.choice([0, 0, 5]), rng.getrandbits(32), rng.randbytes(rng.randrange(64)))
        return (
            vmac
            + src_mac
            + b"\x08\x00"
            + build_ipv4(src, host, 1, icmp, 64, rng.getrandbits(16), rng.random() < 0.5)
        )
    if kind in (5, 6):  # SYN to an open port, with options
        options = rng.choice(
            [
                b"",
                b"\x02\x04\x05\xb4",
                b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + rng.randbytes(8) + b"\x01\x03\x03\x07",
                b"\x01\x03\x03\x0a\x01\x01\x08\x0a" + rng.randbytes(8) + b"\x04\x02\x00\x00",
            ]
        )
        flags = 0x02 if rng.random() < 0.8 else rng.getrandbits(8)
        window = rng.choice([64240, 1024, 31337, 65535, 0, 4, 63])
        dport = rng.choice([22, 80, 443, 8080, 0, 65535])
        packet = build_tcp_packet(
            src,
            host,
            rng.randrange(1024, 65536),
            dport,
            rng.getrandbits(32),
            0,
            flags,
            window,
            64,
            1,
            True,
            options,
        )
        return vmac + src_mac + b"\x08\x00" + packet
    if kind == 7:  # other TCP
        seq, ack, flags = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(8)
        payload = rng.randbytes(rng.randrange(0, 200))
        packet = build_tcp_packet(src, host, 40000, 80, seq, ack, flags, 502, 64, 2, True, payload=payload)
        return vmac + src_mac + b"\x08\x00" + packet
    if kind == 8:  # UDP
        packet = build_udp_packet(
            src, host, 5353, rng.choice([53, 161, 137]), rng.randbytes(rng.randrange(40)), 64, 3, False
        )
        return vmac + src_mac + b"\x08\x00" + packet
    if kind == 9:  # IPv4 from one of our addresses (another MAC), and from afar through a router
        packet = build_udp_packet(host, PEER, 53, 5353, b"spoof", 64, 4, False)
        routed = build_udp_packet(0x08080808, host, 53, 5353, b"far", 57, 5, False)
        return rng.choice(
            [PEER_MAC + src_mac + b"\x08\x00" + packet, vmac + ROUTER_MAC + b"\x08\x00" + routed]
        )
    if kind == 10:  # VLAN-tagged ARP, IPv6, LLC: ignored
        tag = b"\x81\x00" + rng.randbytes(2)
        arp = build_arp_frame(BROADCAST, 1, src_mac, src, bytes(6), host)
        return rng.choice(
            [arp[:12] + tag + arp[12:], vmac + src_mac + b"\x86\xdd" + rng.randbytes(60), rng.randbytes(60)]
        )
    return rng.randbytes(rng.randrange(0, 1600))


def mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        change = rng.randrange(9)
        if change == 0 and data:  # a byte
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        elif change == 1:  # cut short
            del data[rng.randrange(len(data) + 1) :]
        elif change == 2:  # extended
            data += rng.randbytes(rng.randrange(1, 64))
        elif change == 3 and len(data) >= 18:  # IP total length
            data[16:18] = rng.getrandbits(16).to_bytes(2, "big")
        elif change == 4 and len(data) >= 15:  # IP header length / version
            data[14] = rng.choice([0x45, 0x46, 0x4F, 0x44, 0x40, 0x65, rng.getrandbits(8)])
        elif change == 5 and len(data) >= 48:  # TCP data offset and flags
            data[46] = rng.getrandbits(8)
            data[47] = rng.getrandbits(8)
        elif change == 6 and len(data) >= 26:  # the IP header checksum
            data[24] ^= 1 << rng.randrange(8)
        elif change == 7 and len(data) >= 52:  # the TCP/ICMP checksum
            data[rng.choice([36, 50, 51])] ^= 0xFF
        elif change == 8 and len(data) >= 14:  # the ethertype
            data[12:14] = rng.choice([b"\x08\x00", b"\x08\x06", b"\x81\x00", rng.randbytes(2)])
    return bytes(data)


def fuzzed(seed: int, index: int) -> tuple[bytes, bool]:
    """Frame `index` of the soak: the same for a given seed, however the soak is cut into children."""
    rng = random.Random(seed * 1_000_003 + index)
    return mutate(rng, seed_frame(rng)), rng.random() < 0.9


# --------------------------------------------------------------------------- the address table churning


class Churn:
    """Random operations on a Responder's table, as the sensor makes them, over the address pool."""

    def __init__(self, responder: Responder, seed: int) -> None:
        self.r, self.rng = responder, random.Random(seed)
        self.echo: list[tuple] = []
        self.tcp: list[tuple] = []
        if OSDB.exists():
            from dynapot.personality.engine import compile_personality
            from dynapot.personality.osdb import fingerprints_by_name, load_osdb

            by_name = fingerprints_by_name(load_osdb(OSDB))
            for i, name in enumerate(["Linux 5.4", "Microsoft Windows 10", "Apple AirPort Express WAP"]):
                personality = compile_personality(by_name[name], seed=i, uptime=1000.0, now=0.0)
                self.echo.append(personality.echo_recipe())
                recipe = personality.syn_recipe()
                if recipe is not None:
                    self.tcp.append((*recipe, (22, 80, 443, 0, 65535)))
        for i in range(POOL):
            self.r.bind(BASE + i, mac_of(BASE + i))
            self.recipes(BASE + i)
        if hasattr(self.r, "set_networks"):
            self.r.set_networks([(0xC6120000, 16)], 0xC6120001)

    def recipes(self, ip: int) -> None:
        rng = self.rng
        try:
            self.r.set_echo(ip, rng.choice(self.echo) if self.echo and rng.random() < 0.8 else None)
            self.r.set_tcp(ip, rng.choice(self.tcp) if self.tcp and rng.random() < 0.8 else None)
        except KeyError:
            pass  # not bound (reserved or unbound): refused, as it must be

    def step(self) -> None:
        rng, r = self.rng, self.r
        ip = BASE + rng.randrange(POOL)
        op = rng.randrange(8)
        if op == 0:
            r.unbind(ip)
        elif op == 1:
            r.reserve(ip)
        elif op in (2, 3):
            r.bind(ip, mac_of(ip))
            self.recipes(ip)
        elif op == 4:
            self.recipes(ip)
        elif op == 5:
            r.forget(PEER, rng.randrange(65536), ip, rng.choice([22, 80]))
        elif op == 6:
            r.set_probe_windows(rng.sample(range(65536), rng.randrange(33)))
        elif op == 7 and hasattr(r, "set_networks"):
            nets = [(rng.getrandbits(32), rng.randrange(33)) for _ in range(rng.randrange(4))]
            r.set_networks([(0xC6120000, 16), *nets], rng.choice([0, 0xC6120001]))


# --------------------------------------------------------------------------- children


def worker_decisions(seed: int, start: int, count: int, progress: Path) -> None:
    r = Responder(-1)
    churn = Churn(r, seed + start)
    judge = getattr(r, "judge", None)
    for i in range(2000):  # warm-up: the allocator and the table reach their working size
        frame, ok = fuzzed(seed + 1, i)
        r.answer(frame, ok, now=1000.0)
    before = rss_mb()
    peak = before
    for i in range(start, start + count):
        frame, ok = fuzzed(seed, i)
        now = 1000.0 + i * 0.002  # 500 frames a second of the thread's clock
        if judge is not None and i & 1:
            judge(frame, ok, now=now)
        else:
            r.answer(frame, ok, now=now)
        if i % 997 == 0:
            churn.step()
        if i % CHUNK_PROGRESS == 0:
            progress.write_text(str(i))
            if i % 50_000 == 0:
                r.stats()
                r.take()
                peak = max(peak, rss_mb())
    after = rss_mb()
    print(
        json.dumps({"frames": count, "rss_before": before, "rss_after": after, "rss_peak": max(peak, after)})
    )


def worker_thread(seed: int, start: int, count: int, progress: Path) -> None:
    from dynapot.sensor.rawsock import RawSocket

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    raw = RawSocket("lo", fast=True)
    r = raw.responder
    churn = Churn(r, seed + start)
    raw.start()
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sender.bind(("lo", 0))
    taken = send_errors = 0

    def drain() -> int:
        n = 0
        while batch := r.take(4096):
            n += len(batch)
        return n

    before = peak = 0.0
    for i in range(start, start + count):
        if i - start == 2000:
            before = rss_mb()  # after the warm-up
        frame, _ = fuzzed(seed, i)
        if len(frame) < 14:
            frame += bytes(14 - len(frame))  # the smallest frame a packet socket sends
        try:
            sender.send(frame)
        except OSError:
            send_errors += 1
        if i % 64 == 0:
            taken += drain()
        if i % 997 == 0:
            churn.step()
        if i % CHUNK_PROGRESS == 0:
            progress.write_text(str(i))
            if i % 50_000 == 0:
                peak = max(peak, rss_mb())
    time.sleep(0.5)
    taken += drain()
    after = rss_mb()
    stats = r.stats()
    _, kernel_drops = struct.unpack("II", raw._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    raw.close()
    print(
        json.dumps(
            {
                "frames": count,
                "sent": count - send_errors,
                "received": stats["received"],
                "taken": taken,
                "dropped": stats["dropped"],
                "kernel_drops": kernel_drops,
                "rss_before": before or after,
                "rss_after": after,
                "rss_peak": max(peak, after),
            }
        )
    )


def soak(mode: str, frames: int, seed: int, *, wrap: list[str] | None = None, timeout: float = 3600) -> dict:
    """Run `frames` frames through children of `mode`, restarting after a crash."""
    crashes, done, results = 0, 0, []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        progress = Path(tmp) / "progress"
        start = 0
        while start < frames:
            progress.write_text(str(start))
            argv = [*(wrap or []), sys.executable, str(HERE), "--worker", mode, "--seed", str(seed)]
            argv += ["--start", str(start), "--count", str(frames - start), "--progress", str(progress)]
            child = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            if child.returncode == 0:
                results.append(json.loads(child.stdout.strip().splitlines()[-1]))
                done += frames - start
                break
            if child.returncode > 0:  # not a crash: this script is wrong
                raise RuntimeError(f"{mode} worker failed: {child.stderr[-2000:]}")
            crashes += 1
            reached = int(progress.read_text() or start)
            sys.stderr.write(
                f"{mode}: child ended with {child.returncode} near frame {reached}: {child.stderr[-400:]}\n"
            )
            done += reached - start
            start = reached + CHUNK_PROGRESS  # the crash lies within the next CHUNK_PROGRESS frames
            if crashes >= 50:
                break
    first = results[0] if results else {}
    growth = max((r["rss_after"] - r["rss_before"] for r in results), default=0.0)
    return {
        "frames": frames,
        "frames_done": done,
        "crashes": crashes,
        "rss_before_mb": round(first.get("rss_before", 0.0), 1),
        "rss_after_mb": round(results[-1]["rss_after"], 1) if results else None,
        "rss_growth_mb": round(growth, 2),
        "seconds": round(time.monotonic() - started, 1),
        **{k: v for k, v in (results[-1] if results else {}).items() if k in THREAD_FIGURES},
    }


# --------------------------------------------------------------------------- misuse

SYN_FRAME = (
    "from dynapot.netstack.packets import build_tcp_packet\n"
    "syn = b'\\x02' * 6 + bytes.fromhex('020000000003') + b'\\x08\\x00' + build_tcp_packet(\n"
    "    0xC6120003, 0xC6120064, 4000, 80, 1, 0, 2, 1000, 64, 1, True)\n"
)
TEMPLATES = "t = tuple((0x12, 1000, 64, 1, b'', b'', k, k, k) if k in (0, 1) else None for k in range(8))\n"
# Each case exits 0 when the API held (an exception is fine), 3 on damage; a signal is a crash.
MISUSE: dict[str, str] = {
    "Isn never initialised: next()": """
from dynapot._fastpath import Isn
try:
    Isn.__new__(Isn).next(1.0)
except ValueError:
    pass
""",
    "Isn never initialised: value": """
from dynapot._fastpath import Isn
i = Isn.__new__(Isn)
i.value = 5
assert i.value == 5
""",
    "Isn initialised twice": """
from dynapot._fastpath import Isn
i = Isn(1, [1, 2], 0, 0.0)
for n in range(1000):
    try:
        i.__init__(1, [1] * (n % 64 + 1), n, float(n))
    except TypeError:
        pass
    i.next(float(n))
""",
    "a recipe with an uninitialised Isn": SYN_FRAME
    + TEMPLATES
    + """
from dynapot._fastpath import Isn, Responder
r = Responder(-1)
r.bind(0xC6120064, b'\\x02' * 6)
try:
    r.set_tcp(0xC6120064, (t, (1, 0, 0, 0, None), Isn.__new__(Isn), -1.0, 0, 0.0, (80,)))
except ValueError:
    raise SystemExit(0)
r.answer(syn, now=5.0)
""",
    "a clock rate that is not finite": TEMPLATES
    + """
import math
from dynapot._fastpath import Isn, Responder
r = Responder(-1)
r.bind(0xC6120064, b'\\x02' * 6)
for hz in (math.nan, math.inf, 1e300):
    try:
        r.set_tcp(0xC6120064, (t, (1, 0, 0, 0, None), Isn(1, [1], 0, 0.0), hz, 0, 0.0, (80,)))
    except ValueError:
        continue
    raise SystemExit(3)  # accepted
""",
    "Responder never initialised: answer()": SYN_FRAME
    + """
from dynapot._fastpath import Responder
r = Responder.__new__(Responder)
try:
    r.bind(0xC6120064, b'\\x02' * 6)
except ValueError:
    pass
try:
    r.answer(syn, now=5.0)
except ValueError:
    pass
""",
    "Responder never initialised: take()": """
from dynapot._fastpath import Responder
try:
    Responder.__new__(Responder).take()
except ValueError:
    pass
""",
    "Responder never initialised: event_fd()": """
from dynapot._fastpath import Responder
try:
    fd = Responder.__new__(Responder).event_fd()
except ValueError:
    raise SystemExit(0)
raise SystemExit(3 if fd >= 0 else 0)  # a descriptor that is not its own
""",
    "Responder whose initialisation failed": """
import gc, os
from dynapot._fastpath import Responder
for bad in ({'max_frames': 0}, {'max_bytes': 1}):
    try:
        Responder(-1, **bad)
    except ValueError:
        pass
gc.collect()
try:
    os.fstat(0)
except OSError:
    raise SystemExit(3)  # closed a descriptor it never opened
""",
    "Responder initialised twice": """
import os
from dynapot._fastpath import Responder
r = Responder(-1)
fds = len(os.listdir('/proc/self/fd'))
fd = r.event_fd()
for _ in range(200):
    try:
        r.__init__(-1)
    except TypeError:
        pass
if len(os.listdir('/proc/self/fd')) > fds or r.event_fd() != fd:
    raise SystemExit(3)  # leaked or replaced
""",
    "Responder stopped before starting, started without a socket": """
from dynapot._fastpath import Responder
r = Responder(-1)
r.stop()
try:
    r.start()
except ValueError:
    pass
r.stop()
r.take(-5)
r.take(0)
""",
}


def misuse(wrap: list[str] | None = None, timeout: float = 20.0) -> dict[str, str]:
    """Each case in a child with a silent pipe for stdin (a read of fd 0 would hang)."""
    outcomes: dict[str, str] = {}
    for name, code in MISUSE.items():
        child = subprocess.Popen(
            [*(wrap or []), sys.executable, "-c", code],
            stdin=subprocess.PIPE,  # kept open: a read of fd 0 blocks
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            child.wait(timeout * (20 if wrap else 1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            outcomes[name] = "hang"
            continue
        finally:
            child.stdin.close()
        stderr = child.stderr.read()
        child.stderr.close()
        if child.returncode < 0:
            outcomes[name] = f"crash ({signal.Signals(-child.returncode).name})"
        elif child.returncode == 3:
            outcomes[name] = "damage"
        elif child.returncode != 0:
            outcomes[name] = f"error {child.returncode}: {stderr.decode()[-200:]}"
        else:
            outcomes[name] = "ok"
    return outcomes


# --------------------------------------------------------------------------- valgrind


def valgrind_errors(xml_file: Path) -> tuple[int, list[str]]:
    """Errors whose stack passes through _fastpath (the interpreter's own reports are not ours)."""
    try:
        root = ET.parse(xml_file).getroot()
    except (ET.ParseError, OSError):
        return -1, ["no valgrind report"]
    found: list[str] = []
    for error in root.iter("error"):
        kind = error.findtext("kind") or ""
        if kind in ("Leak_PossiblyLost", "Leak_StillReachable"):
            continue
        frames = [(f.findtext("fn") or "?", f.findtext("obj") or "") for f in error.iter("frame")]
        ours = [fn for fn, obj in frames if "_fastpath" in obj]
        if ours and not any(fn.startswith("PyInit") for fn in ours):
            found.append(f"{kind} in {ours[0]}")
    return len(found), found[:10]


def run_valgrind(frames: int, seed: int) -> None:
    if shutil.which("valgrind") is None:
        emit("valgrind", False, error="valgrind is not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "vg-%p.xml"
        wrap = [
            "valgrind",
            "--xml=yes",
            f"--xml-file={xml}",
            "--leak-check=full",
            "--child-silent-after-fork=yes",
        ]
        os.environ["PYTHONMALLOC"] = "malloc"
        try:
            result = soak("decisions", frames, seed, wrap=wrap)
            crashes = result["crashes"]
            if os.geteuid() == 0 and shutil.which("unshare") is not None:  # the thread, the queue
                crashes += soak("thread", frames, seed, wrap=["unshare", "--net", *wrap])["crashes"]
            outcomes = misuse(wrap)
        finally:
            del os.environ["PYTHONMALLOC"]
        errors, examples = 0, []
        for report in Path(tmp).glob("vg-*.xml"):
            n, found = valgrind_errors(report)
            errors += max(n, 0)
            examples += found
    crashed = [name for name, outcome in outcomes.items() if outcome.startswith(("crash", "hang"))]
    emit(
        "valgrind",
        errors == 0 and crashes == 0 and not crashed,
        frames=frames,
        valgrind_errors=errors,
        examples=examples[:10],
        crashes=crashes + len(crashed),
        misuse_cases=len(outcomes),
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument(
        "--thread-frames", type=int, default=None, help="frames through the thread (default --frames)"
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--valgrind", type=int, default=0, metavar="N", help="also run N frames under valgrind"
    )
    parser.add_argument(
        "--no-thread", action="store_true", help="skip the soak through the thread (needs root)"
    )
    parser.add_argument("--worker", choices=["decisions", "thread"], help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--progress", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "decisions":
        worker_decisions(args.seed, args.start, args.count, args.progress)
        return 0
    if args.worker == "thread":
        worker_thread(args.seed, args.start, args.count, args.progress)
        return 0

    failed = False
    result = soak("decisions", args.frames, args.seed)
    ok = result["crashes"] == 0 and result["rss_growth_mb"] <= RSS_LIMIT_MB
    emit("decisions", ok, **result, rss_limit_mb=RSS_LIMIT_MB)
    failed |= not ok

    if args.no_thread:
        pass
    elif os.geteuid() != 0 or shutil.which("unshare") is None:
        emit("thread", False, skipped="needs root and unshare (a private network namespace)")
    else:
        frames = args.thread_frames or args.frames
        result = soak("thread", frames, args.seed, wrap=["unshare", "--net"])
        ok = result["crashes"] == 0 and result["rss_growth_mb"] <= RSS_LIMIT_MB
        emit("thread", ok, **result, rss_limit_mb=RSS_LIMIT_MB)
        failed |= not ok

    outcomes = misuse()
    bad = {name: outcome for name, outcome in outcomes.items() if outcome != "ok"}
    crashes = sum(1 for outcome in bad.values() if outcome.startswith("crash"))
    emit("misuse", not bad, cases=len(outcomes), crashes=crashes, failures=bad)
    failed |= bool(bad)

    if args.valgrind:
        run_valgrind(args.valgrind, args.seed)
    resource.getrusage(resource.RUSAGE_CHILDREN)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
