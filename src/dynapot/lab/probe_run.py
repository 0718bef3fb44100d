"""Send the realism probes to one host and print what came back: one JSON line per probe.

Run inside the lab's attacker namespace (`python -m dynapot.lab.probe_run SPEC`), SPEC being a
JSON object {"ip": ..., "targets": [[label, protocol, port], ...], "short": bool}. Each line:
{"label", "protocol", "probe", "kind", "steps": [base64 of what came back after each step],
"end": "closed"|"open"|"reset"|"refused"|"timeout", "log": client output, "delay": seconds}.
Nothing is normalised here (that is `dynapot.lab.probe_norm`'s job, in the caller).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from dynapot.lab.probes import Probe, probes_for

__all__ = ["main", "run_probe"]

CONNECT_TIMEOUT = 5.0
FIRST_BYTE = 6.0  # seconds to wait for the first byte of an answer (PAM delays a failed login 2-3 s)
QUIET = 0.8  # an answer is over after this long without a byte
STEP_LIMIT = 10.0  # seconds per step at most
MAX_BYTES = 65536  # kept per step
PER_PROTOCOL = 2  # probes of one protocol at once
DELAY_TRIES = 2


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, str | None]:
    """What the server sends until it is quiet, closes or resets: (bytes, "closed"/"reset"/None)."""
    data = b""
    started = time.monotonic()
    wait = FIRST_BYTE
    while time.monotonic() - started < STEP_LIMIT:
        try:
            chunk = await asyncio.wait_for(reader.read(8192), wait)
        except TimeoutError:
            return data, None
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset"
        if not chunk:
            return data, "closed"
        if len(data) < MAX_BYTES:
            data += chunk[: MAX_BYTES - len(data)]
        wait = QUIET
    return data, None


async def _raw(ip: str, port: int, probe: Probe) -> dict[str, Any]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return {"steps": [], "end": "refused" if isinstance(exc, ConnectionRefusedError) else "timeout"}
    steps: list[bytes] = []
    end: str | None = None
    try:
        if probe.greeting:
            data, end = await _read_answer(reader)
            steps.append(data)
        for payload in probe.send:
            if end:
                break
            try:
                writer.write(payload)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                end = "reset"
                break
            data, end = await _read_answer(reader)
            steps.append(data)
    finally:
        writer.close()
    return {"steps": [base64.b64encode(s).decode() for s in steps], "end": end or "open"}


_SSH_BASE = (
    "-v", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=10", "-o", "PubkeyAuthentication=no",
)  # fmt: skip


async def _ssh_client(ip: str, port: int, probe: Probe) -> dict[str, Any]:
    argv = ["ssh", *_SSH_BASE, *probe.args, "-p", str(port), f"probe@{ip}", "true"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"log": "", "end": "timeout"}
    return {"log": err.decode(errors="replace")[-20000:], "end": f"exit {proc.returncode}"}


async def _ssh_delay(ip: str, port: int, probe: Probe) -> dict[str, Any]:
    """The shortest of `DELAY_TRIES` waits for a wrong password's refusal (the least disturbed
    by a busy machine)."""
    results = [await _one_delay(ip, port) for _ in range(DELAY_TRIES)]
    delays = [r["delay"] for r in results if r["delay"] is not None]
    return {"end": results[0]["end"], "delay": min(delays) if delays else None}


async def _one_delay(ip: str, port: int) -> dict[str, Any]:
    import asyncssh

    times: list[float] = []

    class Client(asyncssh.SSHClient):
        def password_auth_requested(self) -> str | None:
            times.append(time.monotonic())
            return "wrong-probe-password" if len(times) == 1 else None

        def kbdint_auth_requested(self) -> str | None:
            return None

    try:
        async with asyncio.timeout(30):
            await asyncssh.connect(
                ip, port, username="probe", client_factory=Client, known_hosts=None,
                client_keys=None, agent_path=None, preferred_auth="password",
            )  # fmt: skip
        return {"end": "accepted", "delay": None}
    except asyncssh.PermissionDenied:
        done = time.monotonic()
        return {
            "end": "denied",
            "delay": (times[1] if len(times) > 1 else done) - times[0] if times else None,
        }
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return {"end": f"error {type(exc).__name__}", "delay": None}


async def run_probe(ip: str, port: int, probe: Probe) -> dict[str, Any]:
    """Run one probe against ip:port; the raw result (see the module docstring)."""
    runner = {"raw": _raw, "ssh-client": _ssh_client, "ssh-delay": _ssh_delay}[probe.kind]
    return await runner(ip, port, probe)


async def _run_all(spec: dict[str, Any]) -> None:
    ip = spec["ip"]
    lock = asyncio.Lock()

    async def one(label: str, port: int, probe: Probe, gate: asyncio.Semaphore) -> None:
        async with gate:
            result = await run_probe(ip, port, probe)
        line = {"label": label, "protocol": probe.protocol, "probe": probe.name, "kind": probe.kind, **result}
        async with lock:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    tasks = []
    for label, protocol, port in spec["targets"]:
        gate = asyncio.Semaphore(PER_PROTOCOL)
        probes = probes_for(protocol, bool(spec.get("short")))
        tasks += [one(label, int(port), p, gate) for p in probes]
    await asyncio.gather(*tasks)


def run_spec(argv: list[str] | None, module: str, run: Callable[[Any], object]) -> int:
    """The entry point of a runner started in a lab namespace: its one argument, a JSON spec,
    handed to `run`; status 2 with the usage or the reason when there is no such argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} SPEC-JSON", file=sys.stderr)
        return 2
    try:
        spec = json.loads(args[0])
    except ValueError as exc:
        print(f"bad spec: {exc}", file=sys.stderr)
        return 2
    run(spec)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_spec(argv, "dynapot.lab.probe_run", lambda spec: asyncio.run(_run_all(spec)))


if __name__ == "__main__":
    raise SystemExit(main())
