"""The sensor's event writer process: batches of events on stdin, into the database and the log.

Started by `EventWriter(child=True)`; the database URL comes in DYNAPOT_DB (never on the
command line). Protocol: a 4-byte length and a pickled list of event tuples per batch from
the parent (a trusted pipe between our own processes); a 4-byte count back when the batch
is written. End of input ends the process after the last batch.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
from pathlib import Path

from dynapot.db import Access, open_database
from dynapot.sensor.eventlog import _LENGTH, Event, EventSink, _read_exact
from dynapot.sensor.privileges import drop_privileges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--user")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dynapot.eventsink %(levelname)s %(message)s")
    url = os.environ.pop("DYNAPOT_DB", None)
    db = open_database(url, access=Access.APPEND) if url else None  # it only adds events
    sink = EventSink(db, args.log)
    if db is not None:
        with db.engine.connect():
            pass  # the pooled connection (and SQLite's files) opened before dropping root
    if args.user:
        drop_privileges(args.user)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(_LENGTH.pack(0))  # ready
    stdout.flush()
    while True:
        header = _read_exact(stdin, _LENGTH.size)
        if header is None:
            break
        payload = _read_exact(stdin, _LENGTH.unpack(header)[0])
        if payload is None:
            break
        batch = [Event(*fields) for fields in pickle.loads(payload)]  # noqa: S301 - our own parent's pipe
        sink.write(batch)
        stdout.write(_LENGTH.pack(len(batch)))
        stdout.flush()
    sink.stopping = True
    sink.close()


if __name__ == "__main__":
    main()
