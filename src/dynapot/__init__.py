"""dynapot: dynamic honeypots that configure themselves from the real network.

Discovery (nmap, p0f) feeds an inventory database; a pure planner fills the unused
addresses with virtual honeypots whose OS mix mirrors the real hosts; the plan is
exported in honeyd's configuration language for the sensor.
"""

__version__ = "0.1.0"
