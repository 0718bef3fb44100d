"""Time to scan and plan the lab network with the real nmap (active discovery).

Builds the lab, runs `dynapot scan` from the attacker namespace (normal mode; add
--polite to also measure nmap's polite mode, which takes minutes), then plans and
writes honeyd.conf. Prints one JSON line per figure, and tears the lab down.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from dynapot.lab import lab_up
from dynapot.processes import python_command

PORTS = "21,22,23,25,80,110,139,143,443,445,3306,3389,8080"


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def dynapot(*args: str, netns: str | None = None) -> float:
    command = [*python_command(), "-m", "dynapot", *args]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    start = time.perf_counter()
    subprocess.run(command, check=True, timeout=1800, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polite", action="store_true", help="also measure polite mode (slow)")
    parser.add_argument("-N", "--parallel", default="8")
    args = parser.parse_args()
    modes = ["normal", "polite"] if args.polite else ["normal"]
    with lab_up() as lab, tempfile.TemporaryDirectory() as tmp:
        network, gateway = str(lab.network), str(lab.gateway)
        for mode in modes:
            url = f"sqlite:///{Path(tmp) / f'{mode}.db'}"
            scan = ["scan", network, "--ports", PORTS, "-N", args.parallel, "--db", url]
            if mode == "polite":
                scan.append("--polite")
            scan_s = dynapot(*scan, netns=lab.attacker.netns)
            plan_s = dynapot(
                "honeyd-config",
                "--network",
                network,
                "--gateway",
                gateway,
                "--apply",
                "-o",
                str(Path(tmp) / "honeyd.conf"),
                "--db",
                url,
            )
            hosts = len(lab.hosts)
            emit(f"lab_scan_{mode}", scan_s, "s", hosts=hosts, ports=PORTS, parallel=int(args.parallel))
            emit(f"lab_plan_and_export_{mode}", plan_s, "s", note="process start + nmap-os-db load included")
            emit(f"lab_scan_to_plan_{mode}", scan_s + plan_s, "s")


if __name__ == "__main__":
    main()
