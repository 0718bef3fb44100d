"""Discovery: what the real network looks like.

Every source reduces what it learned to `Observation` records, which the inventory merges
into the database: nmap (`active`, and `nmap_xml` for existing scans), passive sniffing
(`passive`: p0f v3 signatures from `p0f`, ARP, banners, names) and the logs of a p0f the
admin runs (`p0f_log`).
"""

from dynapot.discovery.observation import Observation, OsGuess, PortObservation

__all__ = ["Observation", "OsGuess", "PortObservation"]
