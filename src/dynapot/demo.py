"""The self-contained demo: the main job when no real network is given.

It builds the lab network (namespaces and a bridge in 198.18.0.0/24, real hosts
running sshd, HTTP and FTP), runs `dynapot scan` with the real nmap from the
attacker namespace, plans virtual honeypots for the free addresses and writes
them as honeyd.conf, starts dynapot's sensor with that file in the sensor namespace,
lets nmap -O from the attacker namespace look at a few virtual hosts, shows what the
sensor logged, then tears the lab down. Each step is the CLI command an administrator
would type, printed before it runs.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import click
from sqlalchemy import create_engine, text

from dynapot.lab import Lab, lab_up
from dynapot.lab.sensor import running_sensor

DEMO_PORTS = "21,22,23,25,80,110,139,143,443,445,3306,3389,8080"
STEP_TIMEOUT = 900  # seconds; the lab scan takes well under a minute


def _step(argv: list[str], *, netns: str | None = None) -> None:
    shown = " ".join(shlex.quote(a) for a in argv)
    prefix = f"ip netns exec {netns} " if netns else ""
    click.secho(f"\n$ {prefix}{shown}", bold=True)
    command = ["ip", "netns", "exec", netns, *argv] if netns else argv
    result = subprocess.run(command, timeout=STEP_TIMEOUT, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"step failed with status {result.returncode}: {shown}")


def run_demo(out_dir: Path, *, db_url: str | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if db_url is None:
        database = out_dir / "dynapot.db"
        for stale in out_dir.glob("dynapot.db*"):
            stale.unlink()  # a fresh inventory each run, so the figures are this run's
        db_url = f"sqlite:///{database.resolve()}"
    dynapot = [sys.executable, "-m", "dynapot"]
    click.secho("building the lab network (namespaces in 198.18.0.0/24) ...", bold=True)
    with lab_up() as lab:
        click.echo(lab.describe())
        network = str(lab.network)
        _step(
            [*dynapot, "scan", network, "--ports", DEMO_PORTS, "-N", "8", "--db", db_url],
            netns=lab.attacker.netns,
        )
        _step([*dynapot, "hosts", "--db", db_url])
        plan_args = ["--network", network, "--gateway", str(lab.gateway), "--db", db_url]
        _step([*dynapot, "plan", *plan_args])
        config = out_dir / "honeyd.conf"
        _step([*dynapot, "honeyd-config", *plan_args, "--apply", "-o", str(config)])
        plan_json = out_dir / "plan.json"
        with plan_json.open("w") as handle:
            subprocess.run(
                [*dynapot, "plan", *plan_args, "--json"], stdout=handle, timeout=STEP_TIMEOUT, check=True
            )
        _deceive(lab, config, plan_json, out_dir, db_url)
    click.secho("\nlab torn down.", bold=True)
    click.echo(f"inventory: {db_url}\nplan:      {plan_json}\nhoneyd:    {config}")


def _show_targets(plan_json: Path, count: int = 4) -> list[dict]:
    """A few virtual hosts of different OS groups that have open ports (nmap -O needs one)."""
    hosts = json.loads(plan_json.read_text())["virtual_hosts"]
    chosen: dict[str, dict] = {}
    for host in hosts:
        if host["services"] and host["personality"] and host["os"] not in chosen:
            chosen[host["os"]] = host
    return list(chosen.values())[:count]


def _deceive(lab: Lab, config: Path, plan_json: Path, out_dir: Path, db_url: str) -> None:
    workdir = out_dir / "sensor"
    workdir.mkdir(exist_ok=True)
    targets = _show_targets(plan_json)
    click.secho(f"\nstarting dynapot's sensor in {lab.sensor.netns} with {config} ...", bold=True)
    with running_sensor(lab, config.read_text(), workdir, db_url=db_url):
        for host in targets:
            click.echo(f"  {host['ip']} should look like: {host['personality']}")
        ports = sorted({s["port"] for h in targets for s in h["services"]} | {1})
        port_list = ",".join(str(p) for p in ports)
        _step(["nmap", "-n", "-O", "-p", port_list, *(h["ip"] for h in targets)], netns=lab.attacker.netns)
    click.secho("\nwhat the sensor logged (honeypot_events):", bold=True)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT kind, scan_tool, COUNT(*) FROM honeypot_events"
                    " GROUP BY kind, scan_tool ORDER BY 3 DESC"
                )
            ).all()
    finally:
        engine.dispose()
    for kind, tool, count in rows:
        click.echo(f"  {count:6d}  {kind}" + (f"  ({tool})" if tool else ""))
