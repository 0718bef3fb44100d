"""`dynapot collector`: the Sebek v3 collector on its own (it also runs in `dynapot run`)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import click

from dynapot.cli.common import Context, UserError, command_options, seconds_option, setting_option
from dynapot.db import Access

__all__ = ["register"]

STATUS_LOG_INTERVAL = 60.0


def register(main: click.Group) -> None:
    """Add `collector` to the `dynapot` group."""
    main.add_command(collector_command)


@click.command("collector")
@setting_option(
    "--listen", setting="collector.listen", metavar="ADDR:PORT", help="UDP address and port to listen on."
)
@setting_option(
    "--magic",
    setting="collector.magic",
    metavar="HEX",
    help="Magic value of the Sebek clients (e.g. 0xD0D0D0).",
)
@seconds_option(until="SIGTERM")
@command_options
def collector_command(ctx: Context, seconds: float | None) -> None:
    """Receive Sebek v3 records from high-interaction honeypots into the sessions table.

    Creates the database when it is not there. Logs its counters every minute and prints
    them as one JSON object when it stops: records received, stored, malformed (by reason),
    lost (counter gaps), dropped (queue, kernel).
    """
    from dynapot.collector import Collector

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ctx.settings
    collector = Collector(None, settings.collector)

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if seconds is not None:
            loop.call_later(seconds, stop.set)
        try:
            await collector.start()
        except OSError as exc:
            raise UserError(
                f"{settings.describe('collector.listen')}: cannot listen: {exc.strerror}"
            ) from None
        collector.db = ctx.database(Access.CREATE)  # once listening: a bad address makes no database

        async def log_status() -> None:
            while not stop.is_set():
                await asyncio.sleep(STATUS_LOG_INTERVAL)
                logging.getLogger("dynapot.collector").info("status %s", json.dumps(collector.status()))

        reporter = asyncio.create_task(log_status())
        try:
            await collector.run(stop)
        finally:
            reporter.cancel()

    asyncio.run(main_loop())
    click.echo(json.dumps(collector.status(), sort_keys=True))
