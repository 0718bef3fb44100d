"""Service timing and segmenting, real daemons against dynapot's imitation of them.

The lab host of the realism suite runs the real daemons (OpenSSH, vsftpd, BusyBox telnetd,
Postfix: `dynapot.lab.daemons`); nmap -sV scans it and a dynapot sensor serves one virtual host
configured from that scan, as the planner would. Then `dynapot.lab.timing_run` connects N times
to each service of both, one connection at a time, from the attacker namespace, and times what
the wire shows (a raw socket's copy of each segment, kernel timestamps: see that module):
time to first byte, time from a wrong password to its refusal, and how the greeting is cut
into segments.

Prints one JSON line per figure {"name": "<service> <metric>", "unit": "s", "real": {median,
p90, min, max, n}, "dynapot": {...}, "differs"} and one per service's greeting segments
{"name": "<service> segments", "real": "...", "dynapot": "...", "differs"}. Needs root; the lab
lives in 198.18.0.0/15 and is torn down whatever happens.

    bench/bench_service_timing.py [--n 20] [--logins 5] [--service telnet ...] [--raw FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dynapot.lab import LabSpec, lab_up
from dynapot.lab.realism import (
    TARGETS,
    TIMED_PROTOCOLS,
    imitation_config,
    nmap_services,
    real_spec,
    targets,
    time_host,
)
from dynapot.lab.sensor import running_sensor
from dynapot.lab.timing_stats import summary_lines, timing_rows

VIRTUAL_OFFSET = 70
PERSONALITY = "Linux 5.4"
TIMED = tuple(
    label for label, protocol, _ in TARGETS if protocol in TIMED_PROTOCOLS
)  # ssh, ftp, telnet, smtp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="connections per service and host")
    parser.add_argument("--logins", type=int, default=5, help="of which this many try a wrong password")
    parser.add_argument("--service", action="append", default=[], choices=TIMED, help="only this service")
    parser.add_argument(
        "--raw", type=Path, help="also write every connection's line to this file (JSON lines)"
    )
    args = parser.parse_args()
    if not 1 <= args.n <= 500 or not 0 <= args.logins <= args.n:
        parser.error("--n must be 1-500 and --logins 0..n")
    labels = args.service or list(TIMED)
    with (
        lab_up(LabSpec(hosts=(real_spec(),), service_timeout=120)) as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        real_ip = str(lab.host("real").ip)
        virtual_ip = str(lab.network.network_address + VIRTUAL_OFFSET)
        ports = [port for _, _, port in targets(labels)]
        config = imitation_config("imitation", virtual_ip, nmap_services(lab, real_ip, ports), PERSONALITY)
        print(json.dumps({"honeyd_config": config}), flush=True)
        with running_sensor(lab, config, Path(tmp), database=False):
            real = time_host(lab, real_ip, labels=labels, n=args.n, logins=args.logins)
            imitation = time_host(lab, virtual_ip, labels=labels, n=args.n, logins=args.logins)
    if args.raw:
        with args.raw.open("w") as raw:
            for host, lines in (("real", real), ("dynapot", imitation)):
                for line in lines:
                    raw.write(json.dumps({"host": host, **line}) + "\n")
    for line in summary_lines(real, imitation):
        print(json.dumps(line))
    for row in timing_rows(real, imitation, real_ip, virtual_ip):
        if row["probe"] == "timing-segments":
            print(
                json.dumps(
                    {
                        "name": f"{row['service']} segments",
                        "real": row["real"],
                        "dynapot": row["dynapot"],
                        "differs": row["differs"],
                    }
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
