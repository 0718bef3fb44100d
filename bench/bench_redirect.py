"""Redirect benchmarks, each beside its reference measured in the same run.

- sans-IO: microseconds per packet through `RedirectTable` (attacker -> backend on a live flow,
  backend -> attacker reply, a new flow's SYN) beside `parse_ipv4` of the same packet (what
  every path pays); memory of a full table (`max_flows` flows, as many sticky attackers).
- lab (`--lab`, root): SYN -> SYN+ACK round trips (bench/synrtt.c) to a virtual host's port
  redirected to a real backend (the backend's kernel answers, through the sensor both ways),
  beside the same virtual host's emulated port (the sensor answers) and a real lab host's
  sshd (a kernel, directly).

Prints one JSON object per figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from dynapot.netstack.packets import build_tcp_packet, parse_ipv4
from dynapot.netstack.redirect import Backend, RedirectLimits, RedirectTable

HERE = Path(__file__).resolve().parent
ATTACKER, VH, BACKEND = 0xC6120003, 0xC612006E, 0xC6120034


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def per_packet(fn, packets: list, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for packet in packets:
            fn(packet)
        best = min(best, (time.perf_counter() - start) / len(packets))
    return best * 1e6


def bench_sans_io(flows: int) -> None:
    backend = Backend("b", BACKEND, b"\x02\0\0\0\0\x34")
    limits = RedirectLimits(max_flows=flows, max_attackers=flows, flows_per_attacker=flows)
    table = RedirectTable([backend], limits)
    payload = b"x" * 512
    data = parse_ipv4(
        build_tcp_packet(ATTACKER, VH, 40000, 22, 1, 1, 0x18, 29200, 64, 1, True, payload=payload)
    )
    reply = parse_ipv4(
        build_tcp_packet(BACKEND, ATTACKER, 22, 40000, 1, 1, 0x18, 29200, 64, 1, True, payload=payload)
    )
    syn = parse_ipv4(build_tcp_packet(ATTACKER, VH, 40000, 22, 1, 0, 0x02, 29200, 64, 1, True))
    table.from_attacker(syn, [backend], 0.0)
    raw = [data.header + data.payload] * 20_000
    reference = per_packet(parse_ipv4, raw)
    forward = per_packet(lambda p: table.from_attacker(p, [backend], 1.0), [data] * 20_000)
    back = per_packet(lambda p: table.from_backend(p, 1.0), [reply] * 20_000)
    emit(
        "redirect_forward_us_per_packet", forward, "us", parse_ipv4_us=round(reference, 3), bytes=len(payload)
    )
    emit("redirect_reply_us_per_packet", back, "us", parse_ipv4_us=round(reference, 3), bytes=len(payload))
    syns = [
        parse_ipv4(
            build_tcp_packet(ATTACKER + n // 60000, VH, 1024 + n % 60000, 22, 1, 0, 0x02, 29200, 64, 1, True)
        )
        for n in range(flows)
    ]
    fresh = RedirectTable([backend], limits)
    tracemalloc.start()
    start = time.perf_counter()
    for packet in syns:
        fresh.from_attacker(packet, [backend], 1.0)
    elapsed = time.perf_counter() - start
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    emit("redirect_new_flow_us", elapsed / flows * 1e6, "us", note="SYN of a new flow, traced (slower)")
    emit("redirect_full_table_bytes", size, "B", flows=len(fresh), bytes_per_flow=round(size / flows))
    before = len(fresh)
    for n in range(1000):
        syn = parse_ipv4(build_tcp_packet(ATTACKER + 9, VH, 1024 + n, 23, 1, 0, 2, 1, 64, 1, True))
        fresh.from_attacker(syn, [backend], 2.0)
    emit(
        "redirect_table_stays_bounded",
        len(fresh),
        "flows",
        before=before,
        evicted=fresh.counters["redirect: flow evicted"],
    )


def syn_rtts(lab, synrtt: Path, address: str, port: int, count: int) -> list[float]:
    result = lab.exec(lab.attacker, [str(synrtt), address, str(port), str(count), "10"], timeout=count + 30)
    return [float(t) / 1000 for t in result.stdout.split() if t != "timeout"]


def p50_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_lab(count: int) -> None:
    from dynapot.lab import lab_up
    from dynapot.lab.backend import high_interaction_backend
    from dynapot.lab.sensor import running_sensor

    with lab_up() as lab, tempfile.TemporaryDirectory(prefix="dynapot-bench-redirect-") as tmp:
        workdir = Path(tmp)
        synrtt = workdir / "synrtt"
        subprocess.run(["gcc", "-O2", "-o", str(synrtt), str(HERE / "synrtt.c")], check=True, timeout=120)
        real = next(h for h in lab.real_hosts if "ssh" in h.services)
        with high_interaction_backend(lab, "hi1", 52) as backend:
            entry = backend.settings()
            settings = workdir / "settings.toml"
            settings.write_text(
                "[[backends]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
            )
            config = (
                'create lin\nset lin personality "Linux 5.4"\nadd lin tcp port 80 open\n'
                f"add lin tcp port 22 proxy {entry['address']}:22\nbind 198.18.0.110 lin\n"
            )
            (workdir / "run").mkdir()
            with running_sensor(lab, config, workdir / "run", extra_args=("--settings", str(settings))):
                syn_rtts(lab, synrtt, "198.18.0.110", 22, 10)  # warm up: the stack, the ARP caches
                redirected = syn_rtts(lab, synrtt, "198.18.0.110", 22, count)
                emulated = syn_rtts(lab, synrtt, "198.18.0.110", 80, count)
                direct = syn_rtts(lab, synrtt, str(real.ip), 22, count)
        r50, r99 = p50_p99(redirected)
        e50, e99 = p50_p99(emulated)
        d50, d99 = p50_p99(direct)
        emit(
            "redirect_syn_rtt_p50", r50, "ms", p99=r99, samples=len(redirected),
            emulated_p50=e50, emulated_p99=e99, real_host_p50=d50, real_host_p99=d99,
            ratio_to_real_host=round(r50 / max(d50, 1e-9), 2),
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=65_536)
    parser.add_argument("--lab", action="store_true", help="also the lab round trips (root)")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    bench_sans_io(args.flows)
    if args.lab:
        bench_lab(args.count)


if __name__ == "__main__":
    sys.exit(main())
