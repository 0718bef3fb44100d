"""honeyd's own port actions beside the services: a script on the connection, or a proxy.

A quoted command runs the honeyd way (the connection on stdin/stdout, HONEYD_* in the
environment, at most `MAX_SCRIPTS` at once); `proxy HOST:PORT` relays to a real machine.
Both see only a stream pair and a `ConnectionInfo`, so they run the same over the sensor's
userland TCP and over a kernel socket in tests. Everything is bounded: bytes kept,
connection lifetime, concurrent scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex

from dynapot.events import Kind
from dynapot.honeyd.config import Action
from dynapot.sensor.config import HostDefinition
from dynapot.services.contract import ConnectionInfo, Handler, Report, excerpt
from dynapot.services.recorder import LIFETIME, RECORD_LIMIT, record

log = logging.getLogger(__name__)

MAX_SCRIPTS = 64


def substitute(command: str, info: ConnectionInfo) -> str:
    """honeyd's variables in a script command line."""
    values = {"$ipsrc": info.src, "$ipdst": info.dst, "$sport": str(info.sport), "$dport": str(info.dport)}
    for name, value in values.items():
        command = command.replace(name, shlex.quote(value))
    return command


class ScriptRunner:
    """Runs honeyd scripts: the connection on stdin/stdout, HONEYD_* in the environment."""

    def __init__(self, max_processes: int = MAX_SCRIPTS, *, cwd: str | None = None) -> None:
        self._slots = asyncio.Semaphore(max_processes)
        self._cwd = cwd

    def handler(self, command: str) -> Handler:
        async def run(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
        ) -> None:
            if self._slots.locked():
                report(Kind.SCRIPT_REFUSED, "too many scripts running", {"command": command})
                writer.close()
                return
            async with self._slots:
                await self._run(command, reader, writer, info, report)

        return run

    async def _run(
        self,
        command: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: ConnectionInfo,
        report: Report,
    ) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HONEYD_IP_SRC": info.src,
            "HONEYD_IP_DST": info.dst,
            "HONEYD_SRC_PORT": str(info.sport),
            "HONEYD_DST_PORT": str(info.dport),
            "HONEYD_PERSONALITY": info.personality or "",
        }
        line = substitute(command, info)
        try:
            process = await asyncio.create_subprocess_shell(
                line,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                cwd=self._cwd,
                start_new_session=True,
            )
        except OSError as exc:
            report(Kind.SCRIPT_FAILED, str(exc), {"command": line})
            writer.close()
            return
        report(Kind.SCRIPT, line, {"pid": process.pid})
        assert process.stdin is not None and process.stdout is not None
        received = bytearray()

        async def inbound() -> None:
            while len(received) < RECORD_LIMIT:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received.extend(chunk)
                process.stdin.write(chunk)
                with contextlib.suppress(ConnectionError):
                    await process.stdin.drain()
            with contextlib.suppress(ConnectionError, RuntimeError):
                process.stdin.close()

        async def outbound() -> None:
            while True:
                chunk = await process.stdout.read(65536)
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()

        tasks = [asyncio.ensure_future(inbound()), asyncio.ensure_future(outbound())]
        try:
            # The script's output ending ends the session, as in honeyd.
            await asyncio.wait_for(tasks[1], LIFETIME)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
            if received:
                report(Kind.DATA, excerpt(bytes(received)), {"bytes": len(received)})
            writer.close()


def proxy(target: str) -> Handler:
    """Relay the connection to a real machine (`HOST:PORT`; `$ipsrc` sends it back to the attacker)."""

    async def run(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
    ) -> None:
        host, _, port_text = target.rpartition(":")
        host = info.src if host == "$ipsrc" else host
        port = (
            info.sport if port_text == "$sport" else info.dport if port_text == "$dport" else int(port_text)
        )
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError) as exc:
            report(Kind.PROXY_FAILED, f"{host}:{port}: {exc}", None)
            writer.close()
            return
        report(Kind.PROXY, f"{host}:{port}", None)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
            total = 0
            with contextlib.suppress(ConnectionError):
                while chunk := await src.read(65536):
                    total += len(chunk)
                    dst.write(chunk)
                    await dst.drain()
            with contextlib.suppress(OSError, RuntimeError):
                dst.write_eof() if dst.can_write_eof() else dst.close()
            return total

        try:
            sent_up, sent_down = await asyncio.wait_for(
                asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer)), LIFETIME
            )
            report(Kind.PROXY_CLOSED, f"{host}:{port}", {"bytes_in": sent_up, "bytes_out": sent_down})
        except TimeoutError:
            report(Kind.PROXY_CLOSED, f"{host}:{port}: lifetime exceeded", None)
        finally:
            up_writer.close()
            writer.close()

    return run


class ActionHandlers:
    """The handler serving each honeyd port action: a service, a script, a proxy or the recorder.

    One handler per distinct action, shared by every host that carries it (a /16 shares a
    handful); a service name without an emulator is served by the recorder.
    """

    def __init__(self, services: dict[str, Handler], scripts: ScriptRunner | None) -> None:
        self.services = services
        self.scripts = scripts
        self._handlers: dict[Action, Handler | None] = {}

    def for_host(self, definition: HostDefinition) -> dict[int, Handler]:
        """TCP port -> handler, for the ports whose action has one."""
        table = {}
        for port, action in definition.tcp.items():
            handler = self.for_action(action)
            if handler is not None:
                table[port] = handler
        return table

    def for_action(self, action: Action) -> Handler | None:
        if action not in self._handlers:
            self._handlers[action] = self._make(action)
        return self._handlers[action]

    def _make(self, action: Action) -> Handler | None:
        if action.kind == "service":
            return self.services.get(action.target or "", record)
        if action.kind == "command" and self.scripts is not None and action.target:
            return self.scripts.handler(action.target)
        if action.kind == "proxy" and action.target:
            return proxy(action.target)
        if action.kind == "open":
            return record
        return None
