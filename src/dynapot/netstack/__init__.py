"""A small sans-IO network stack for virtual hosts: bytes in, frames out, no sockets inside.

`types` holds the parsed views every layer shares; `packets` parses and builds frames
with precompiled structs (never scapy on this path); `arp`, `icmp`, `udp` and `tcp` are
the per-protocol state machines; `host` joins them into one virtual host's stack.
"""
