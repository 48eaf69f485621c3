"""Time and causality: injectable wall clocks, the hybrid logical clock and version vectors.

This is the foundation layer: it imports nothing else from the package but ``errors``.
"""

from microstatedb.clock._clocks import Clock, ManualClock, RealClock
from microstatedb.clock._hlc import HLC, LOGICAL_BITS, hlc_logical, hlc_physical_ms, make_hlc
from microstatedb.clock._vv import Dot, VersionVector, vv_dominates, vv_merge

__all__ = [
    "HLC",
    "LOGICAL_BITS",
    "Clock",
    "Dot",
    "ManualClock",
    "RealClock",
    "VersionVector",
    "hlc_logical",
    "hlc_physical_ms",
    "make_hlc",
    "vv_dominates",
    "vv_merge",
]
