"""The logs a Unix machine keeps writing, as its shell shows them: made when read, from the moment.

/var/log/auth.log (or CentOS's secure), syslog (messages) and kern.log tell what a quiet
server does: cron's hourly run, systemd's timers, and, once, the admin's last login from the
neighbour login(1)'s "Last login" line names. Their lines are drawn from the host's seed and
the hour, so that a log read twice in one hour is the same and grows as the hours pass.
"""

from __future__ import annotations

import time

from dynapot.services.machine import Machine

__all__ = ["last_write", "text"]

HOURS = 6  # the hours of log shown
_APT_DAILY = "systemd[1]: Starting apt-daily.service - Daily apt download activities..."


def last_write(machine: Machine, now: float) -> float:
    """When the logs were last written: cron's last hourly run (minute 17), or the boot."""
    hour = int(now // 3600) * 3600 + 17 * 60
    if hour > now:
        hour -= 3600
    return max(hour + 1, machine.identity.boot_time + 30)


def _stamp(when: float) -> str:
    return time.strftime("%b %e %H:%M:%S", time.gmtime(when))


def text(machine: Machine, name: str, now: float) -> str:
    """The text of the log `name` at Unix time `now`."""
    identity = machine.identity
    host = identity.hostname
    rng = identity.rng(f"log-{name}")
    pid = rng.randint(2_000, 30_000) + int(now // 3600) * 7 % 20_000
    lines: list[tuple[float, str]] = []
    start = max(identity.boot_time + 30, now - HOURS * 3600)
    hour = int(start // 3600) * 3600 + 17 * 60
    while hour <= now:
        if hour >= start:
            pid += rng.randint(40, 900)
            if name in ("auth.log", "secure"):
                lines.append(
                    (
                        hour,
                        f"CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0)"
                        " by (uid=0)",
                    )
                )
                lines.append((hour + 1, f"CRON[{pid}]: pam_unix(cron:session): session closed for user root"))
            elif name in ("syslog", "messages", "cron"):
                lines.append(
                    (hour, f"CRON[{pid}]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)")
                )
                if rng.random() < 0.3 and machine.systemd:
                    lines.append(
                        (
                            hour + 900,
                            _APT_DAILY,
                        )
                    )
        hour += 3600
    if name == "kern.log" and now - identity.boot_time < HOURS * 3600:
        release = identity.kernel.release
        lines.append((identity.boot_time, f"kernel: [    0.000000] Linux version {release}"))
    return "".join(f"{_stamp(when)} {host} {line}\n" for when, line in sorted(lines))
