"""Planner time for a /16 (65,536 addresses) with 5,000 real hosts.

Prints JSON lines: free-address computation, a first plan, a re-plan after one real host
joins (the churn-minimising path), and a first plan of the same network with each host as
nmap describes it (label and CPE) and the hosts of no OS known by their TTL only, each the
best of several runs.
Catalog loading (reading nmap-os-db once at start) is reported apart.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
import time

from dynapot.personality.catalog import GroupDescription, MacVendors, PersonalityCatalog
from dynapot.personality.osdb import load_osdb
from dynapot.planner import NetworkPicture, OpenPort, Policy, RealHost, free_addresses, plan

NETWORK = ipaddress.IPv4Network("198.18.0.0/16")
REAL_HOSTS = 5_000
REPEATS = 5
GROUPS = [
    (GroupDescription("Windows 10", "Microsoft", "Windows", "10", "general purpose"), 45),
    (GroupDescription("Linux 4.X", "Linux", "Linux", "4.X", "general purpose"), 30),
    (GroupDescription("Windows 7", "Microsoft", "Windows", "7", "general purpose"), 15),
    (GroupDescription("FreeBSD 11.X", "FreeBSD", "FreeBSD", "11.X", "general purpose"), 5),
    (None, 5),
]
PORTS = [OpenPort("tcp", 22, "ssh"), OpenPort("tcp", 80, "http"), OpenPort("tcp", 445, "microsoft-ds")]


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def best_of(func, repeats: int = REPEATS) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    start = time.perf_counter()
    catalog = PersonalityCatalog(load_osdb(), MacVendors.load())
    emit("catalog_load", time.perf_counter() - start, "s", note="once per process: nmap-os-db + mac prefixes")

    rng = random.Random(7)
    base = int(NETWORK.network_address)
    used = rng.sample(range(base + 2, base + NETWORK.num_addresses - 1), REAL_HOSTS)
    weights = [w for _, w in GROUPS]
    real = tuple(
        RealHost(
            str(ipaddress.IPv4Address(a)),
            rng.choices(GROUPS, weights)[0][0],
            None,
            tuple(rng.sample(PORTS, 2)),
        )
        for a in used
    )
    gateway = NETWORK.network_address + 1

    seconds, free = best_of(lambda: free_addresses(NETWORK, used, gateway=gateway))
    emit("free_addresses_65536", seconds, "s", free=len(free))
    free_ips = tuple(str(ipaddress.IPv4Address(a)) for a in free)
    picture = NetworkPicture(NETWORK, real, free_ips)
    policy = Policy(service_scripts={("tcp", "ssh"): "ssh", ("tcp", "http"): "http"})

    seconds, first = best_of(lambda: plan(picture, policy, [], catalog))
    emit("plan_65536_addresses_5000_real", seconds, "s", virtual_hosts=len(first.virtual_hosts))

    # One more real host on an address a honeypot holds: the re-plan should move almost nothing.
    taken = first.virtual_hosts[100].ip
    joined = NetworkPicture(
        NETWORK, (*real, RealHost(taken, GROUPS[0][0])), tuple(ip for ip in free_ips if ip != taken)
    )
    seconds, second = best_of(lambda: plan(joined, policy, first.virtual_hosts, catalog))
    moved = len(second.added) + len(second.removed)
    emit(
        "replan_after_one_host_joins",
        seconds,
        "s",
        addresses_moved=moved,
        services_changed=len(second.changed),
    )

    # The same network as nmap and the other clues describe it: each host with nmap's own label and
    # CPE, and the hosts of no OS known by their TTL only (they join their family's largest group).
    described = {g: _as_nmap_says(g) for g, _ in GROUPS}
    mixed = NetworkPicture(
        NETWORK, tuple(RealHost(h.ip, described[h.group], None, h.open_ports) for h in real), free_ips
    )
    seconds, third = best_of(lambda: plan(mixed, policy, [], catalog))
    emit(
        "plan_65536_addresses_5000_real_as_nmap_says",
        seconds,
        "s",
        virtual_hosts=len(third.virtual_hosts),
        personalities=len({vh.personality for vh in third.virtual_hosts}),
        left_out=len(third.left_out),
    )


NMAP_SAYS = {
    "Windows 10": ("Microsoft Windows 10 1607", "cpe:/o:microsoft:windows_10:1607"),
    "Linux 4.X": ("Linux 4.15 - 5.6", "cpe:/o:linux:linux_kernel:4"),
    "Windows 7": ("Microsoft Windows 7 SP1", "cpe:/o:microsoft:windows_7::sp1"),
    "FreeBSD 11.X": ("FreeBSD 11.0-RELEASE", "cpe:/o:freebsd:freebsd:11.0"),
}


def _as_nmap_says(group: GroupDescription | None) -> GroupDescription:
    if group is None:
        return GroupDescription(
            "Linux", "Linux", "Linux", None, None, ("TTL 64: Linux or another Unix",), (), "ttl"
        )
    label, cpe = NMAP_SAYS[group.name]
    return dataclasses.replace(group, seen_names=(label,), cpe=(cpe,), source="nmap 98%")


if __name__ == "__main__":
    main()
