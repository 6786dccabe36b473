"""Worlds of network namespaces with a real server and real agents: the end-to-end tests' test bed and
`meshroute lab`. Root only; see network.py for the guarantees and topology.py for the addressing plan."""

from meshroute.lab.daemons import Agent, ManagementServer
from meshroute.lab.netns import DEFAULT_PREFIX, CommandError, sweep
from meshroute.lab.network import Network
from meshroute.lab.process import Proc, ProcessTimeout
from meshroute.lab.snapshot import NetSnapshot, snapshot
from meshroute.lab.topology import Iface, Internet, Lan, Node, Segment
from meshroute.lab.wait import WaitTimeout, wait_for
from meshroute.lab.world import World

__all__ = [
    "DEFAULT_PREFIX",
    "Agent",
    "CommandError",
    "Iface",
    "Internet",
    "Lan",
    "ManagementServer",
    "NetSnapshot",
    "Network",
    "Node",
    "Proc",
    "ProcessTimeout",
    "Segment",
    "WaitTimeout",
    "World",
    "snapshot",
    "sweep",
    "wait_for",
]
