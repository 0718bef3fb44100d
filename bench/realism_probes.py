"""The realism probe suite: the same probes to real daemons and to dynapot's imitation of them.

A lab host runs the real daemons (Debian's OpenSSH with its sshd_config, vsftpd, BusyBox telnetd,
Postfix, Apache, nginx on 8080, MariaDB; `dynapot.lab.daemons`). nmap -sV scans it from the
attacker namespace, and a dynapot sensor serves one virtual host configured from that scan, as
the planner would. Then every probe of `dynapot.lab.probes` goes to both, from the attacker
namespace, and the answers are compared after normalising only random fields
(`dynapot.lab.probe_norm`). nmap -sV of both is compared per port as one more probe.

Prints one JSON line per probe {"service", "probe", "real", "dynapot", "differs"}, then one
{"summary": {service: {"probes", "tells"}}, "probes", "tells"}. Needs root; the lab lives in
198.18.0.0/15 and is torn down whatever happens. `--short`: a handful of probes per service.
`--only-differences`: print only the rows that differ (the summary counts all). `--service
NAME` (repeatable): only that service's probes, e.g. `--service smtp`. `--timing N` (10; 0 for
none): a timing section after the probes, N connections per service to each host, one at a time
(`dynapot.lab.timing_run`): time to first byte, to the last segment of a greeting cut in several,
from a wrong password to its refusal, and how the greeting is cut into segments, as rows
"timing-..."; a delay beyond the real daemon's own spread is a tell (`dynapot.lab.timing_stats`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dynapot.lab import LabSpec, lab_up
from dynapot.lab.realism import (
    compare,
    imitation_config,
    nmap_rows,
    nmap_services,
    probe_host,
    real_spec,
    summary,
    targets,
    time_host,
)
from dynapot.lab.sensor import running_sensor
from dynapot.lab.timing_stats import timing_rows

VIRTUAL_OFFSET = 70
PERSONALITY = "Linux 5.4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a handful of probes per service")
    parser.add_argument("--only-differences", action="store_true")
    parser.add_argument(
        "--service", action="append", default=[], help="probe only this service (ssh, ftp, ...); repeatable"
    )
    parser.add_argument(
        "--timing",
        type=int,
        default=10,
        metavar="N",
        help="timing section: N connections per service and host, one at a time (0: none)",
    )
    args = parser.parse_args()
    if not 0 <= args.timing <= 200:
        parser.error("--timing must be 0-200")
    try:
        chosen = targets(args.service)
    except ValueError as exc:
        parser.error(str(exc))
    ports = [port for _, _, port in chosen]
    with (
        lab_up(LabSpec(hosts=(real_spec(),), service_timeout=120)) as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        real_ip = str(lab.host("real").ip)
        virtual_ip = str(lab.network.network_address + VIRTUAL_OFFSET)
        real_nmap = nmap_services(lab, real_ip, ports)
        config = imitation_config("imitation", virtual_ip, real_nmap, PERSONALITY)
        print(json.dumps({"honeyd_config": config}), flush=True)
        with running_sensor(lab, config, Path(tmp), database=False):
            virtual_nmap = nmap_services(lab, virtual_ip, ports)
            real = probe_host(lab, real_ip, short=args.short, labels=args.service)
            imitation = probe_host(lab, virtual_ip, short=args.short, labels=args.service)
            timed: list[dict] = []
            if args.timing:
                logins = min(5, args.timing)  # five each: enough for a difference to show (p < 0.01)
                real_times = time_host(lab, real_ip, labels=args.service, n=args.timing, logins=logins)
                virtual_times = time_host(lab, virtual_ip, labels=args.service, n=args.timing, logins=logins)
                timed = timing_rows(real_times, virtual_times, real_ip, virtual_ip)
        rows = nmap_rows(real_nmap, virtual_nmap) + compare(real, imitation, real_ip, virtual_ip) + timed
    for row in rows:
        if row["differs"] or not args.only_differences:
            print(json.dumps(row))
    per_service = summary(rows)
    print(
        json.dumps(
            {
                "summary": per_service,
                "probes": sum(v["probes"] for v in per_service.values()),
                "tells": sum(v["tells"] for v in per_service.values()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
