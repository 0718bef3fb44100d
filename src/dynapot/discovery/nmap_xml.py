"""Parse nmap's XML output (`-oX`) into `Observation` records.

Used both by the active scanner (which reads `nmap -oX -` from a pipe) and to import
XML files that an operator ran by hand. The parser is strict: a document that is not
a complete, well-formed nmap run raises `NmapXmlError` naming what is wrong and where,
so that a scan killed midway never reaches the inventory as a half-truth.

The XML comes from a tool that probed an attacker-reachable network, so it is read
with defusedxml (no entity expansion, no external references).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from dynapot.discovery.observation import Observation, OsGuess, PortObservation
from dynapot.discovery.osinfer import starting_ttl

__all__ = ["NmapRun", "NmapXmlError", "parse_nmap_xml"]

_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


class NmapXmlError(ValueError):
    """The document is not a complete, well-formed nmap XML run."""


@dataclass(frozen=True, slots=True)
class NmapRun:
    """One parsed nmap run.

    `timed_out` lists the addresses nmap gave up on (`<host timedout="true">`, from
    `--host-timeout`); their observations are in `observations` but may lack ports and OS.
    """

    args: str
    started_at: datetime | None
    finished_at: datetime | None
    observations: tuple[Observation, ...]
    timed_out: tuple[str, ...] = ()


class _LineTreeBuilder(TreeBuilder):
    """A TreeBuilder that remembers the source line of every element, for error messages."""

    def __init__(self) -> None:
        super().__init__()
        self.expat: object | None = None
        self.lines: dict[int, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        elem = super().start(tag, attrs)
        line = getattr(self.expat, "CurrentLineNumber", None)
        if line is not None:
            # Keyed by id(): every element stays alive in the tree while we parse it.
            self.lines[id(elem)] = line
        return elem


class _Parser:
    """Walks one parsed document; holds the line table so errors can say where."""

    def __init__(self, lines: dict[int, int]) -> None:
        self._lines = lines

    def error(self, elem: Element | None, message: str) -> NmapXmlError:
        line = self._lines.get(id(elem)) if elem is not None else None
        where = f" (line {line})" if line is not None else ""
        return NmapXmlError(f"{message}{where}")

    def int_attr(self, elem: Element, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
        raw = elem.get(name)
        if raw is None:
            raise self.error(elem, f"<{elem.tag}> has no {name!r} attribute")
        try:
            value = int(raw.strip())
        except ValueError:
            raise self.error(elem, f"<{elem.tag}> {name}={raw!r} is not an integer") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(elem, f"<{elem.tag}> {name}={value} is out of range {lo}..{hi}")
        return value

    def time_attr(self, elem: Element | None, name: str) -> datetime | None:
        if elem is None or elem.get(name) is None:
            return None
        seconds = self.int_attr(elem, name, lo=0)
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise self.error(elem, f"<{elem.tag}> {name}={seconds} is not a valid time") from None

    def run(self, root: Element) -> NmapRun:
        if root.tag != "nmaprun":
            raise self.error(root, f"root element is <{root.tag}>, expected <nmaprun>")
        started_at = self.time_attr(root, "start")
        finished = root.find("runstats/finished")
        if finished is None:
            # nmap writes <runstats> last; without it the run did not end normally.
            raise self.error(root, "no <runstats><finished>: the nmap run did not complete")
        if finished.get("exit") == "error":
            msg = finished.get("errormsg") or "no message"
            raise self.error(finished, f"nmap reported that the run failed: {msg}")
        finished_at = self.time_attr(finished, "time")
        run_time = finished_at or started_at

        observations: list[Observation] = []
        timed_out: list[str] = []
        for host in root.iter("host"):
            obs = self.host(host, run_time)
            observations.append(obs)
            if host.get("timedout") == "true":
                timed_out.append(obs.ip)
        return NmapRun(
            args=root.get("args", ""),
            started_at=started_at,
            finished_at=finished_at,
            observations=tuple(observations),
            timed_out=tuple(timed_out),
        )

    def host(self, host: Element, run_time: datetime | None) -> Observation:
        status = host.find("status")
        if status is None or status.get("state") is None:
            raise self.error(host, "<host> has no <status state=...>")

        ip: str | None = None
        mac: str | None = None
        mac_vendor: str | None = None
        for addr in host.findall("address"):
            kind = addr.get("addrtype", "ipv4")  # the DTD's default
            value = addr.get("addr")
            if value is None:
                raise self.error(addr, "<address> has no 'addr' attribute")
            if kind == "mac":
                if not _MAC_RE.match(value):
                    raise self.error(addr, f"MAC address {value!r} is not six hex octets")
                mac, mac_vendor = value.upper(), addr.get("vendor") or None
            elif kind in ("ipv4", "ipv6"):
                try:
                    parsed = ipaddress.ip_address(value)
                except ValueError:
                    raise self.error(addr, f"{kind} address {value!r} is not an IP address") from None
                if f"ipv{parsed.version}" != kind:
                    raise self.error(addr, f"address {value!r} is marked as {kind}")
                ip = ip or str(parsed)  # first IP address wins; nmap writes one
            else:
                raise self.error(addr, f"<address> has unknown addrtype {kind!r}")
        if ip is None:
            raise self.error(host, "<host> has no IPv4 or IPv6 address")

        seen_at = self.time_attr(host, "endtime") or self.time_attr(host, "starttime") or run_time
        if seen_at is None:
            raise self.error(host, f"no time for host {ip}: neither the host nor the run has one")

        hostname = next(
            (h.get("name") for h in host.findall("hostnames/hostname") if h.get("name")),
            None,
        )
        return Observation(
            ip=ip,
            seen_at=seen_at,
            tool="nmap",
            alive=status.get("state") == "up",
            mac=mac,
            mac_vendor=mac_vendor,
            hostname=hostname,
            os=self.os_guess(host),
            ports=tuple(self.port(p) for p in host.findall("ports/port")),
            initial_ttl=self.initial_ttl(host),
        )

    def initial_ttl(self, host: Element) -> int | None:
        """The TTL the host's replies started with: the commonest TTL of its SYN/ACKs and RSTs plus
        the routers on the way (nmap's <distance> counts the host itself), rounded up to the
        usual starting values; None when no port reply gave one."""
        seen: Counter[int] = Counter()
        for state in host.findall("ports/port/state"):
            if state.get("reason") in ("syn-ack", "reset") and state.get("reason_ttl") is not None:
                ttl = self.int_attr(state, "reason_ttl", lo=0, hi=255)
                if ttl:
                    seen[ttl] += 1
        if not seen:
            return None
        observed = min(seen, key=lambda ttl: (-seen[ttl], ttl))
        distance = host.find("distance")
        hops = self.int_attr(distance, "value", lo=0, hi=255) - 1 if distance is not None else 0
        return starting_ttl(observed + max(hops, 0))

    def port(self, port: Element) -> PortObservation:
        protocol = port.get("protocol")
        if not protocol:
            raise self.error(port, "<port> has no 'protocol' attribute")
        number = self.int_attr(port, "portid", lo=0, hi=65535)
        state = port.find("state")
        if state is None or not state.get("state"):
            raise self.error(port, f"port {protocol}/{number} has no <state state=...>")
        service = port.find("service")

        def svc(name: str) -> str | None:
            return (service.get(name) or None) if service is not None else None

        return PortObservation(
            protocol=protocol,
            port=number,
            state=state.get("state", ""),
            service=svc("name"),
            product=svc("product"),
            version=svc("version"),
            extra_info=svc("extrainfo"),
        )

    def os_guess(self, host: Element) -> OsGuess | None:
        best = self.most_accurate(host.findall("os/osmatch"))
        if best is None:
            return None
        name = best.get("name")
        if not name:
            raise self.error(best, "<osmatch> has no 'name' attribute")
        osclass = self.most_accurate(best.findall("osclass"))
        if osclass is None:
            return OsGuess(name=name, accuracy=self.int_attr(best, "accuracy", lo=0, hi=100))
        return OsGuess(
            name=name,
            accuracy=self.int_attr(best, "accuracy", lo=0, hi=100),
            vendor=osclass.get("vendor") or None,
            family=osclass.get("osfamily") or None,
            generation=osclass.get("osgen") or None,
            device_type=osclass.get("type") or None,
            cpe=tuple(c.text.strip() for c in osclass.findall("cpe") if c.text and c.text.strip()),
        )

    def most_accurate(self, elems: list[Element]) -> Element | None:
        """The element with the highest accuracy; the first one wins ties (nmap's own order)."""
        best: Element | None = None
        best_accuracy = -1
        for elem in elems:
            accuracy = self.int_attr(elem, "accuracy", lo=0, hi=100)
            if accuracy > best_accuracy:
                best, best_accuracy = elem, accuracy
        return best


def parse_nmap_xml(data: bytes | str) -> NmapRun:
    """Parse one nmap XML document (the whole of `nmap -oX` output).

    Raises `NmapXmlError` for malformed or truncated XML, a root other than <nmaprun>,
    a run without its closing <runstats>, bad addresses, port numbers or accuracies.
    """
    builder = _LineTreeBuilder()
    # A DOCTYPE is fine (nmap writes `<!DOCTYPE nmaprun>`); entities and external
    # references are not, since nothing legitimate in nmap output needs them.
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    builder.expat = getattr(parser, "parser", None)
    if not data.strip():
        raise NmapXmlError("empty nmap XML document (did nmap produce any output?)")
    try:
        parser.feed(data)
        root = parser.close()
    except ParseError as exc:
        # expat's message already carries "line N, column M". It says "no element found"
        # or "unclosed token" when the input stops early, e.g. nmap was killed mid-run.
        truncated = any(m in str(exc) for m in ("no element found", "unclosed token"))
        hint = " (the document ends early: truncated output?)" if truncated else ""
        raise NmapXmlError(f"malformed nmap XML: {exc}{hint}") from None
    except DefusedXmlException as exc:
        raise NmapXmlError(f"refused nmap XML: {exc}") from None
    if root is None:
        raise NmapXmlError("nmap XML has no root element")
    return _Parser(builder.lines).run(root)
