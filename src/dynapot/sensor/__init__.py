"""The sensor: dynapot's own honeyd, answering on the wire for every virtual host.

`config` turns a honeyd configuration into host definitions (personality, MAC, ports);
`rawsock` is the one AF_PACKET socket; `runtime` runs the packet loop and the per-host
sans-IO stacks (dynapot.netstack); `events` writes every touch to honeypot_events and,
optionally, a honeyd-format log; `handlers` connects accepted connections to services,
honeyd scripts and proxies.
"""
