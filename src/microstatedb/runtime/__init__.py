"""Drivers of the sans-I/O protocols: the deterministic simulator and the asyncio runtime.

``microstatedb.runtime.sim`` runs hundreds of nodes in one process over a simulated network;
``SimCluster`` runs the per-key consensus with leases and ``run_chaos`` drives clients against
it (or against CRDT stores) under faults;
``Node`` runs one node over HTTP; ``TxnSim`` and ``TxnNode`` run the transaction protocols
(two-phase commit and sagas) in the simulator and over HTTP. All drive the same ``protocols``
objects.
"""

from microstatedb.runtime import sim
from microstatedb.runtime._chaos import NEMESES, ChaosResult, run_chaos
from microstatedb.runtime._cluster import AsyncQuorum, ClusterStats, FileStorage, SimCluster
from microstatedb.runtime._node import Node, plain
from microstatedb.runtime._sim import SimReport, Simulation
from microstatedb.runtime._txn import CrashPoint, TxnHost, TxnNode, TxnSim, TxnSimStats

__all__ = [
    "NEMESES",
    "AsyncQuorum",
    "ChaosResult",
    "ClusterStats",
    "CrashPoint",
    "FileStorage",
    "Node",
    "SimCluster",
    "SimReport",
    "Simulation",
    "TxnHost",
    "TxnNode",
    "TxnSim",
    "TxnSimStats",
    "plain",
    "run_chaos",
    "sim",
]
