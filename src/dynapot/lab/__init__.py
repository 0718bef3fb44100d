"""The lab: a self-contained test network for tests, the demo and benchmarks.

``lab_up()`` builds network namespaces joined by a bridge (itself inside a "switch"
namespace, so nothing touches the root namespace), all inside 198.18.0.0/15: real hosts
running real sshd, HTTP and FTP servers with varied TCP/IP stack looks, a sensor namespace
and an attacker namespace. ``Lab.down()`` / ``lab_down()`` remove all of it.
"""

# The package's API is its network module's (`network.__all__`), re-exported as it is.
from dynapot.lab.network import *  # noqa: F403
from dynapot.lab.network import __all__  # noqa: F401
