"""Discovery: what the real network looks like.

Every source (nmap today; p0f and ARP later) reduces what it learned to
`Observation` records, which the inventory merges into the database.
"""

from dynapot.discovery.observation import Observation, OsGuess, PortObservation

__all__ = ["Observation", "OsGuess", "PortObservation"]
