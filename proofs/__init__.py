"""Machine-checked proofs of MicroStateDB's protocols and data types.

Promela models (``models/*.pml``) are checked by Spin over their full state space for small
configurations; z3 proves what Spin cannot: the lease timing inequality under clock-rate
drift, quorum intersection, and the semilattice laws of the CRDT joins. Every check has
mutants, bugs seeded on purpose, that must make it fail, so a check that cannot fail is
caught. ``python -m proofs`` runs everything; ``tests/proofs`` ties the models to the code.
"""

from proofs._models import MODELS, SpinModel, model_properties, model_refs
from proofs._spin import SpinResult, parse_pan, run_spin
from proofs._z3 import PROOFS, Z3Proof, Z3Result

__all__ = [
    "MODELS",
    "PROOFS",
    "SpinModel",
    "SpinResult",
    "Z3Proof",
    "Z3Result",
    "model_properties",
    "model_refs",
    "parse_pan",
    "run_spin",
]
