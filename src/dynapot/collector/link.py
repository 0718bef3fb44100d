"""Which attacker a Sebek record belongs to: the hook, and the linker that reads the records.

A `Linker` is asked, for each record, for the attacker's address (or None). The collector's
default, `SocketLinker`, learns it from the records themselves: a socket record (type 2) for
an `accept` call names the connection's remote end, which on a honeypot is the attacker (sshd
accepting the attacker's connection); that process, and every process whose parent is linked
(sshd's child, the shell, what the shell runs), is then the attacker's. Other sources (the
redirect table that sent the attacker to this backend) can implement `Linker` and be given to
the collector instead, or be consulted by a linker that falls back to this one.

An accept from an address in `ignore` unlinks the accepting process and links nothing: the
collector passes its own address, the sensor's, whose health checks connect to the backends
(they are not attackers).

Every process's parent is remembered, so a process is linked through ancestors that were not
linked yet when their own records came (an agent's per-CPU buffers can deliver a child's first
record before the accept of its parent; up to `MAX_DEPTH` generations).

Limits, said plainly: a process that no linked process started, or whose parent sent no record,
stays unlinked (NULL); a reused pid inherits the old link until an accept relinks it; at most
`MAX_PROCESSES` processes are remembered (the least recently seen go first).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Protocol

from dynapot.sebek.records import Record, socket_call

__all__ = ["ACCEPT_CALLS", "MAX_PROCESSES", "Linker", "SocketLinker"]

ACCEPT_CALLS = frozenset({5, 18})  # Linux socketcall numbers of accept and accept4
MAX_PROCESSES = 65_536
MAX_DEPTH = 16  # ancestors followed to find a linked one


class Linker(Protocol):
    def attacker(self, honeypot_ip: str, record: Record) -> str | None:
        """The attacker's address for `record` from `honeypot_ip`, or None when unknown."""
        ...


class SocketLinker:
    """Links processes to the remote end of the connection their ancestors accepted."""

    def __init__(self, limit: int = MAX_PROCESSES, ignore: frozenset[str] = frozenset()) -> None:
        self._links: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._parents: OrderedDict[tuple[str, int], int] = OrderedDict()  # every process seen
        self._limit = limit
        self._ignore = ignore

    def _remember(self, key: tuple[str, int], address: str) -> None:
        self._links[key] = address
        self._links.move_to_end(key)
        while len(self._links) > self._limit:
            self._links.popitem(last=False)

    def _ancestor_link(self, honeypot_ip: str, ppid: int) -> str | None:
        """The link of the nearest linked ancestor, through the parents seen so far."""
        parent: int | None = ppid
        for _ in range(MAX_DEPTH):
            if parent is None:
                return None
            found = self._links.get((honeypot_ip, parent))
            if found is not None:
                return found
            parent = self._parents.get((honeypot_ip, parent))
        return None

    def attacker(self, honeypot_ip: str, record: Record) -> str | None:
        key = (honeypot_ip, record.pid)
        self._parents[key] = record.ppid
        self._parents.move_to_end(key)
        while len(self._parents) > self._limit:
            self._parents.popitem(last=False)
        call = socket_call(record)
        if call is not None and call.call in ACCEPT_CALLS:
            if call.remote_ip in self._ignore:  # the process now serves no attacker
                self._links.pop((honeypot_ip, record.pid), None)
                return None
            remote = ipaddress.ip_address(call.remote_ip)
            if not (remote.is_loopback or remote.is_unspecified or call.remote_ip == honeypot_ip):
                self._remember((honeypot_ip, record.pid), call.remote_ip)
                return call.remote_ip
        own = self._links.get((honeypot_ip, record.pid))
        if own is not None:
            self._links.move_to_end((honeypot_ip, record.pid))
            return own
        inherited = self._ancestor_link(honeypot_ip, record.ppid)
        if inherited is not None:
            self._remember((honeypot_ip, record.pid), inherited)
        return inherited
