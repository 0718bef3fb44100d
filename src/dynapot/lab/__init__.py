"""The lab: a self-contained test network for tests, the demo and benchmarks.

``lab_up()`` builds network namespaces joined by a bridge (itself inside a "switch"
namespace, so nothing touches the root namespace), all inside 198.18.0.0/15: real hosts
running real sshd, HTTP and FTP servers with varied TCP/IP stack looks, a sensor namespace
and an attacker namespace. ``Lab.down()`` / ``lab_down()`` remove all of it.
"""

from dynapot.lab.network import (
    DEFAULT_NETWORK,
    SERVICES,
    HostInfo,
    HostSpec,
    Lab,
    LabError,
    LabSpec,
    default_spec,
    lab_down,
    lab_down_all,
    lab_up,
    list_labs,
    started_run_ids,
)

__all__ = [
    "DEFAULT_NETWORK",
    "SERVICES",
    "HostInfo",
    "HostSpec",
    "Lab",
    "LabError",
    "LabSpec",
    "default_spec",
    "lab_down",
    "lab_down_all",
    "lab_up",
    "list_labs",
    "started_run_ids",
]
