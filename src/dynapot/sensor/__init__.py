"""The sensor: dynapot's own honeyd, answering on the wire for every virtual host.

`main` runs it (`dynapot sensor`): loads the configuration (`config`: honeyd's language
to host definitions), opens the one AF_PACKET socket (`rawsock`, with its C receive thread),
drops root (`privileges`) and runs `runtime.Sensor`, the wiring of the parts: `claims`
(which addresses are ours), `hosts` (each virtual host and its sans-IO stack), `flows` (the
service behind each connection, over `streams`), `dataports` (FTP data connections), `udp`
(UDP services within a budget), `actions` (honeyd's scripts and proxies), `observe` (every
touch as an event) and `eventlog` (events to the database and a honeyd-format log, written
by the `eventsink` child process).
"""
