"""The deterministic simulator (virtual time, one seeded random source, a faulty network).

``Simulation(nodes=300, seed=7)`` builds a fleet of real stores driven by the real protocol
objects; ``partition``, ``cut``, ``flap``, ``crash``/``restart``, ``loss``, ``duplicate``,
``corrupt`` and ``delay`` make the network misbehave; ``run_until_converged`` and ``report``
say how long convergence took in virtual seconds, messages and bytes. A run replays exactly
from its seed.
"""

from microstatedb.runtime._sim import SimReport, Simulation

__all__ = ["SimReport", "Simulation"]
