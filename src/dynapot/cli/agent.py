"""`dynapot agent`: the recorder for Linux high-interaction backends (eBPF, Sebek v3 records)."""

from __future__ import annotations

import json
import logging
import signal

import click

from dynapot.cli.common import Context, UserError, command_options, seconds_option, setting_option

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `agent` to the `dynapot` group."""
    main.add_command(agent_command)


@click.command("agent")
@click.option(
    "--collector", "collector", required=True, metavar="ADDR:PORT", help="The collector's UDP address."
)
@setting_option(
    "--magic",
    setting="collector.magic",
    metavar="HEX",
    help="Magic value of the records (the collector's, e.g. 0xD0D0D0).",
)
@click.option(
    "--netns",
    default="/proc/self/ns/net",
    metavar="PATH",
    help="Record the processes of this network namespace (e.g. /run/netns/NAME).",
)
@seconds_option(until="SIGTERM")
@command_options
def agent_command(ctx: Context, collector: str, netns: str, seconds: float | None) -> None:
    """Record what attackers type, read and run on this Linux backend; ship it as Sebek v3 records.

    Runs bpftrace (root) on syscall tracepoints, filtered in the kernel to the processes of one
    network namespace (by default the agent's own), the agent itself excluded: reads on fd 0,
    writes on fd 1 and 2, execve, accept, connect and new processes. Opens no database (--db is
    accepted like everywhere, and unused). Prints its counters as one JSON object when it stops.
    """
    from dynapot.agent.service import Agent, AgentError, netns_inode
    from dynapot.config import parse_listen

    try:
        address = parse_listen(collector)
    except ValueError as exc:
        raise UserError(f"--collector {collector}: {exc}") from None
    if address[1] == 0:
        raise UserError(f"--collector {collector}: port 0 is not a collector's port")
    try:
        netns_inode(netns)
    except AgentError as exc:
        raise UserError(f"--netns {exc}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent = Agent(address, magic=ctx.settings.collector.magic, netns=netns)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: agent.stop())
    try:
        stats = agent.run(seconds)
    except AgentError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(stats.as_dict(), sort_keys=True))
