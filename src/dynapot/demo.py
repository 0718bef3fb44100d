"""The self-contained demo: the main job when no real network is given.

It builds the lab network (namespaces and a bridge in 198.18.0.0/24, real hosts
running sshd, HTTP and FTP), runs `dynapot scan` with the real nmap from the
attacker namespace, plans virtual honeypots for the free addresses and writes
them as honeyd.conf, then tears the lab down. Each step is the CLI command an
administrator would type, printed before it runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import click

from dynapot.lab import lab_up

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
    click.secho("\nlab torn down.", bold=True)
    click.echo(f"inventory: {db_url}\nplan:      {plan_json}\nhoneyd:    {config}")
