"""Verification: record histories of any client and check what each consistency level promises.

Layering inside the package: ``_history`` (events, the JSON Lines, EDN and Jepsen-log forms,
pairing into operations) is the base; ``_recorder`` writes histories; the checkers read them:
``_linear`` (Wing-Gong-Lowe search over the ``_models``), ``_causal`` (bad patterns),
``_sessions`` (session guarantees) and ``_convergence`` (replicas agree on the prescribed
value). Nothing here imports the store: the checkers work on histories only.
"""

from microstatedb.verify._causal import LEVELS, PATTERNS, BadPattern, CausalResult, check_causal
from microstatedb.verify._convergence import ConvergenceResult, check_convergence
from microstatedb.verify._edn import Keyword
from microstatedb.verify._history import FORMATS, History, HistoryEvent, Operation
from microstatedb.verify._linear import (
    Explanation,
    LinearizabilityResult,
    SearchStats,
    Verdict,
    brute_force_linearizable,
    check_linearizable,
)
from microstatedb.verify._models import (
    MODELS,
    KVAppendModel,
    KVModel,
    RegisterModel,
    SequentialModel,
)
from microstatedb.verify._recorder import Pending, Recorder, default_classify
from microstatedb.verify._sessions import (
    GUARANTEES,
    SessionResult,
    SessionViolation,
    check_sessions,
)
from microstatedb.verify._synthetic import synthetic_history

__all__ = [
    "FORMATS",
    "GUARANTEES",
    "LEVELS",
    "MODELS",
    "PATTERNS",
    "BadPattern",
    "CausalResult",
    "ConvergenceResult",
    "Explanation",
    "History",
    "HistoryEvent",
    "KVAppendModel",
    "KVModel",
    "Keyword",
    "LinearizabilityResult",
    "Operation",
    "Pending",
    "Recorder",
    "RegisterModel",
    "SearchStats",
    "SequentialModel",
    "SessionResult",
    "SessionViolation",
    "Verdict",
    "brute_force_linearizable",
    "check_causal",
    "check_convergence",
    "check_linearizable",
    "check_sessions",
    "default_classify",
    "synthetic_history",
]
