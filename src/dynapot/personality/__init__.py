"""Personalities: the nmap-os-db fingerprints that virtual hosts wear.

`osdb` reads the second-generation nmap-os-db of the installed nmap (never a
copy); `catalog` chooses fingerprints for an OS group and MAC vendor prefixes
from nmap-mac-prefixes.
"""

from dynapot.personality.osdb import Fingerprint, OsClass, OsDbError, load_osdb, parse_osdb

__all__ = ["Fingerprint", "OsClass", "OsDbError", "load_osdb", "parse_osdb"]
