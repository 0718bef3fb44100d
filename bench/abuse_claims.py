"""Abuse checks for address claims: a spoofed packet must not take a virtual host's address.

Builds its own lab (dynapot.lab: the sensor and attacker namespaces, and later a machine that
joins), starts `dynapot sensor` (dynapot.lab.sensor.running_sensor) for ten virtual hosts,
198.18.0.100-109, and attacks from the attacker namespace with forged frames
(dynapot.lab.wire). One JSON line per check, with its figures and pass/fail:

- `spoofed-garp`: one gratuitous ARP for .100 from the attacker's MAC;
- `spoofed-udp`: one UDP datagram from .101's address, from the attacker's MAC;
- `routed`: the attacker poses as a router (datagrams from 203.0.113.7 under a MAC of its
  choosing), then sends one from .102's address under that MAC: no ARP check, address kept;
- `probe`: an RFC 5227 ARP probe for .103 (sender IP 0.0.0.0): noted, no probe of ours, kept;
- `flood`: 2,000 gratuitous ARPs and 2,000 spoofed datagrams over .104-.107 in about a
  second: the sensor's ARP probes, counted on the wire (never an amplifier), addresses kept;
- `genuine-join`: a machine joins on .108 and announces itself (busybox arping -U): the time
  from its announcement to the sensor's last ARP answer for the address (the attacker asks
  who-has every 10 ms); must be under 1 s, and recorded (a conflict event, the status file);
- `hold`: --hold seconds (145 by default, the issue's figure) after the spoofs, .100-.107 still
  answer pings and ARP with the sensor's MAC, none was recorded as released, and the spoofs
  are recorded as unconfirmed (conflict-unconfirmed events).

    sudo python bench/abuse_claims.py [--hold 145] [--no-fastpath]

Needs root (it builds and tears down its own lab).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
import time
from pathlib import Path

from dynapot.lab import LabSpec, lab_up
from dynapot.lab.sensor import RunningSensor, running_sensor
from dynapot.lab.wire import ArpWatch, inject
from dynapot.netstack.packets import BROADCAST_MAC, build_arp_frame, build_udp_packet

FIRST = 100
HOSTS = 10
FAR = "203.0.113.7"
BROADCAST_IP = 0xC61200FF  # 198.18.0.255
ROUTER_MAC = bytes.fromhex("02000000fe01")
JOIN_LIMIT = 1.0  # seconds from a real machine's announcement to the sensor letting go


def config() -> str:
    lines = ["create box", 'set box personality "Linux 5.4"', "add box tcp port 22 open"]
    lines += [f"bind 198.18.0.{FIRST + i} box" for i in range(HOSTS)]
    return "\n".join(lines) + "\n"


def address(i: int) -> str:
    return f"198.18.0.{FIRST + i}"


def ip_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def emit(check: str, passed: bool, **figures: object) -> bool:
    print(json.dumps({"check": check, "pass": passed, **figures}), flush=True)
    return passed


class Attack:
    """The attacker's side of the lab: forged frames out, ARP and pings in."""

    def __init__(self, lab, sensor: RunningSensor, status: Path) -> None:
        self.lab, self.sensor, self.status = lab, sensor, status
        self.me = lab.attacker
        self.mac = mac_bytes(self.me.mac)
        self.ip = ip_int(str(self.me.ip))

    def arp_owners(self, target: str, seconds: float = 0.3) -> set[str]:
        """The MACs that answer who-has `target` now."""
        seen = ArpWatch(self.lab, self.me, seconds, ask=target, every=0.1).result()
        return {a.sender_mac for a in seen if a.op == 2 and a.sender_ip == target}

    def pings(self, target: str, count: int = 2) -> int:
        self.lab.exec(self.me, ["ip", "neigh", "flush", "dev", "eth0"])
        done = self.lab.exec(
            self.me, ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", target], timeout=30
        )
        return sum(1 for line in done.stdout.splitlines() if "bytes from" in line)

    def garp(self, target: str, mac: bytes | None = None) -> bytes:
        mac = mac or self.mac
        return build_arp_frame(BROADCAST_MAC, 1, mac, ip_int(target), bytes(6), ip_int(target))

    def udp_from(self, src: str, mac: bytes | None = None) -> bytes:
        """A broadcast datagram (everyone on the link sees it, the sensor too) from `src`."""
        packet = build_udp_packet(ip_int(src), BROADCAST_IP, 137, 137, b"spoofed", 64, 7, False)
        return BROADCAST_MAC + (mac or self.mac) + b"\x08\x00" + packet

    def events(self, kind: str) -> list[dict]:
        return self.sensor.events(kind)

    def status_now(self) -> dict:
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {}


def probes_for(seen, targets: set[str], virtual: set[str]) -> int:
    """ARP probes (sender IP 0.0.0.0) the sensor sent for `targets`."""
    return sum(
        1
        for a in seen
        if a.op == 1 and a.sender_ip == "0.0.0.0" and a.target_ip in targets and a.sender_mac in virtual
    )


def run(hold: float, fastpath: bool) -> int:
    failed = 0
    spec = LabSpec(hosts=())
    with lab_up(spec) as lab, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        status = workdir / "status.json"
        extra = ("--status", str(status)) + (() if fastpath else ("--no-fastpath",))
        with running_sensor(lab, config(), workdir, extra_args=extra) as sensor:
            attack = Attack(lab, sensor, status)
            owners = {address(i): attack.arp_owners(address(i)) for i in range(HOSTS)}
            virtual = {next(iter(macs)) for macs in owners.values() if len(macs) == 1}
            if len(virtual) != HOSTS:
                emit("setup", False, owners={k: sorted(v) for k, v in owners.items()})
                return 1
            mac_of = {ip: next(iter(macs)) for ip, macs in owners.items()}
            mode = "fastpath" if fastpath else "python"

            # One spoofed packet each: a gratuitous ARP, a UDP datagram.
            started = time.monotonic()
            watch = ArpWatch(lab, attack.me, 1.5)
            inject(lab, attack.me, [attack.garp(address(0)), attack.udp_from(address(1))])
            seen = watch.result()
            for check, i in (("spoofed-garp", 0), ("spoofed-udp", 1)):
                probed = probes_for(seen, {address(i)}, virtual)
                owner = attack.arp_owners(address(i))
                answered = attack.pings(address(i))
                ok = owner == {mac_of[address(i)]} and answered == 2
                failed += not emit(
                    check,
                    ok,
                    mode=mode,
                    address=address(i),
                    our_probes=probed,
                    arp_answered_by=sorted(owner),
                    pings_answered=f"{answered}/2",
                )

            # A router's MAC: its traffic from one of our addresses is no evidence.
            watch = ArpWatch(lab, attack.me, 1.5)
            far = build_udp_packet(ip_int(FAR), ip_int(address(9)), 53, 5353, b"far", 57, 1, False)
            inject(
                lab,
                attack.me,
                [mac_bytes(mac_of[address(9)]) + ROUTER_MAC + b"\x08\x00" + far] * 3
                + [attack.udp_from(address(2), ROUTER_MAC)],
            )
            seen = watch.result()
            probed = probes_for(seen, {address(2)}, virtual)
            owner = attack.arp_owners(address(2))
            failed += not emit(
                "routed",
                probed == 0 and owner == {mac_of[address(2)]},
                mode=mode,
                address=address(2),
                our_probes=probed,
                arp_answered_by=sorted(owner),
            )

            # An RFC 5227 probe for one of our addresses: noted, never answered with a probe of ours.
            watch = ArpWatch(lab, attack.me, 1.5)
            inject(
                lab,
                attack.me,
                [build_arp_frame(BROADCAST_MAC, 1, attack.mac, 0, bytes(6), ip_int(address(3)))],
            )
            seen = watch.result()
            probed = probes_for(seen, {address(3)}, virtual)
            owner = attack.arp_owners(address(3))
            failed += not emit(
                "probe",
                probed == 0 and owner == {mac_of[address(3)]},
                mode=mode,
                address=address(3),
                our_probes=probed,
                arp_answered_by=sorted(owner),
            )

            # A flood of evidence over four addresses.
            targets = [address(i) for i in range(4, 8)]
            frames = [attack.garp(targets[k % 4]) for k in range(2000)]
            frames += [attack.udp_from(targets[k % 4]) for k in range(2000)]
            watch = ArpWatch(lab, attack.me, 4.0)
            t0 = time.monotonic()
            inject(lab, attack.me, frames)
            sent_in = time.monotonic() - t0
            seen = watch.result()
            probed = probes_for(seen, set(targets), virtual)
            span = max(1.0, max((a.time for a in seen), default=t0) - t0)
            kept = all(attack.arp_owners(t) == {mac_of[t]} for t in targets)
            ok = kept and probed <= len(targets) * (int(span) + 2)
            failed += not emit(
                "flood",
                ok,
                mode=mode,
                evidence_frames=len(frames),
                seconds_to_send=round(sent_in, 2),
                our_probes=probed,
                amplification=round(probed / len(frames), 4),
                kept=kept,
            )

            # A real machine joins on .108 and announces itself.
            joined = address(8)
            joiner = lab.join("joiner", FIRST + 8)
            watch = ArpWatch(lab, attack.me, 3.0, ask=joined, every=0.01)
            time.sleep(0.5)
            started_arping = time.monotonic()
            lab.exec(joiner, ["busybox", "arping", "-U", "-c", "1", "-I", "eth0", "-s", joined, joined])
            seen = watch.result()
            # its announcement as the attacker saw it on the wire (else when arping was started)
            announced = min(
                (a.time for a in seen if a.op == 1 and a.sender_mac == joiner.mac and a.target_ip == joined),
                default=started_arping,
            )
            checked = probes_for(seen, {joined}, virtual)
            probe_at = [
                a.time
                for a in seen
                if a.op == 1 and a.sender_ip == "0.0.0.0" and a.sender_mac == mac_of[joined]
            ]
            ours = [
                a.time for a in seen if a.op == 2 and a.sender_ip == joined and a.sender_mac == mac_of[joined]
            ]
            theirs = [
                a.time for a in seen if a.op == 2 and a.sender_ip == joined and a.sender_mac != mac_of[joined]
            ]
            # the sensor answered until the announcement (or the measurement is void), then stopped
            handover = max((t for t in ours if t >= announced), default=announced) - announced
            answered_before = sum(1 for t in ours if t < announced)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and joined not in attack.status_now().get("released", {}):
                time.sleep(0.5)
            recorded = [e for e in attack.events("conflict") if e["dst_ip"] == joined]
            in_status = joined in attack.status_now().get("released", {})
            ok = (
                handover < JOIN_LIMIT
                and answered_before > 0
                and bool(theirs)
                and bool(recorded)
                and in_status
            )
            failed += not emit(
                "genuine-join",
                ok,
                mode=mode,
                address=joined,
                handover_s=round(handover, 4),
                sensor_answers_before=answered_before,
                our_probes=checked,
                probe_after_s=round(min(probe_at) - announced, 4) if probe_at else None,
                poll_every_s=0.01,
                announcement_seen=announced != started_arping,
                limit_s=JOIN_LIMIT,
                joiner_answers=len(theirs),
                conflict_events=len(recorded),
                in_status_file=in_status,
            )

            # Hold: the spoofed addresses are still ours long after.
            time.sleep(max(0.0, started + hold - time.monotonic()))
            held = {}
            for i in range(8):
                owner = attack.arp_owners(address(i))
                held[address(i)] = {"arp": sorted(owner), "pings": attack.pings(address(i))}
            kept = all(v["arp"] == [mac_of[a]] and v["pings"] == 2 for a, v in held.items())
            released = [a for a in attack.status_now().get("released", {}) if a != joined]
            unconfirmed = sorted({e["dst_ip"] for e in attack.events("conflict-unconfirmed")})
            checks = attack.status_now().get("address_checks", {})
            failed += not emit(
                "hold",
                kept and not released,
                mode=mode,
                seconds=round(time.monotonic() - started),
                all_answered=kept,
                released=released,
                unconfirmed_recorded=unconfirmed,
                recent_outcomes=len(checks.get("recent", [])),
                routers=checks.get("routers"),
                answers={a: v for a, v in held.items() if v["arp"] != [mac_of[a]] or v["pings"] != 2},
            )
            lab.leave(joiner)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hold", type=float, default=145.0, help="seconds the spoofed addresses must stay ours"
    )
    parser.add_argument("--no-fastpath", action="store_true", help="the sensor without its C receive thread")
    args = parser.parse_args()
    return 1 if run(args.hold, not args.no_fastpath) else 0


if __name__ == "__main__":
    sys.exit(main())
