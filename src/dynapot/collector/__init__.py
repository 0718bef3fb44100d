"""The Sebek v3 collector: records from high-interaction honeypots into the `sessions` table.

`Collector` (`service`) listens on UDP, decodes each datagram (`dynapot.sebek.records`),
keeps each sender's counter (`dynapot.sebek.counter`), links records to the attacker when it
can (`link`), and hands the rows (`rows`) in batches to one worker thread that writes them,
so that the event loop never waits for the database.
"""

from dynapot.collector.link import Linker, SocketLinker
from dynapot.collector.service import Collector, CollectorStats

__all__ = ["Collector", "CollectorStats", "Linker", "SocketLinker"]
