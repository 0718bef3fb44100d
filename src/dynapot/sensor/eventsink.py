"""The sensor's event writer process: batches of events on stdin, into the database and the log.

Started by `EventWriter(child=True)`; the database URL comes in DYNAPOT_DB (never on the
command line). Protocol, both ways over the pipes between our own processes:

- from the writer: a ready message, then one outcome per batch: a 4-byte length and a JSON
  object (`{"position": [segment, offset] | null}`; `{"stored", "quarantined", "abandoned",
  "lag"}`);
- to the writer: per batch, its length, the journal position just after it (-1, -1: none)
  and whether it is live (lag measured) or replayed, then the events as the body of a JSON
  array (`eventformat.encode`): parsed as JSON and checked field by field, never unpickled.

End of input ends the process after the last batch. SIGTERM, or the sensor's death, gives up
waiting for a database that is down (the batch is reported abandoned, its events stay in the
journal); SIGINT is left to the sensor, which ends this process by closing its input.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from dynapot.db import Access, open_database
from dynapot.sensor.eventlog import _BATCH, _read_exact, send_message
from dynapot.sensor.eventstore import EventSink
from dynapot.sensor.journal import Position
from dynapot.sensor.privileges import drop_privileges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--user")
    parser.add_argument("--journal-id")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dynapot.eventsink %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    url = os.environ.pop("DYNAPOT_DB", None)
    db = open_database(url, access=Access.APPEND) if url else None  # it only adds events
    sink = EventSink(db, args.log, journal_id=args.journal_id)

    def give_up(signum: int, frame: object) -> None:
        sink.stopping = True

    signal.signal(signal.SIGTERM, give_up)
    parent = os.getppid()
    sink.orphaned = lambda: os.getppid() != parent
    if db is not None:
        with db.engine.connect():
            pass  # the pooled connection (and SQLite's files) opened before dropping root
    if args.user:
        drop_privileges(args.user)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    position = sink.position()
    send_message(stdout, {"position": None if position is None else [position.segment, position.offset]})
    while True:
        header = _read_exact(stdin, _BATCH.size)
        if header is None:
            break
        length, segment, offset, live = _BATCH.unpack(header)
        payload = _read_exact(stdin, length)
        if payload is None:
            break
        at = Position(segment, offset) if segment >= 0 else None
        send_message(stdout, sink.write_payload(payload, at, live=bool(live)).as_dict())
    sink.close()


if __name__ == "__main__":
    main()
