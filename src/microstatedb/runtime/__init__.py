"""Drivers of the sans-I/O protocols: the deterministic simulator and the asyncio runtime.

``microstatedb.runtime.sim`` runs hundreds of nodes in one process over a simulated network;
``Node`` runs one node over HTTP. Both drive the same ``protocols`` objects.
"""

from microstatedb.runtime import sim
from microstatedb.runtime._node import Node, plain
from microstatedb.runtime._sim import SimReport, Simulation

__all__ = ["Node", "SimReport", "Simulation", "plain", "sim"]
