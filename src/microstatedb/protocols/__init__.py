"""Sans-I/O protocol state machines: messages and timer ticks in, messages and effects out.

Nothing here opens a socket or reads a clock: the deterministic simulator
(``microstatedb.runtime.sim``) and the asyncio runtime drive the same objects, passing the
time in. This package holds delta anti-entropy with gossip, Merkle summaries and
back-pressure, membership with a phi-accrual failure detector, and per-key consensus without
a log (CASPaxos) with read leases for linearizable registers, and distributed transactions:
two-phase commit with presumed abort and cooperative termination, and sagas whose steps run
behind an idempotency barrier, all recorded as events in each party's own store.
"""

from microstatedb.protocols._antientropy import (
    AntiEntropy,
    AntiEntropyConfig,
    AntiEntropyStats,
    Output,
    Send,
)
from microstatedb.protocols._barrier import (
    Barrier,
    Journal,
    Outcome,
    StepResult,
    Write,
    failed,
    ok,
    retry,
)
from microstatedb.protocols._escrow import Escrow, EscrowStats
from microstatedb.protocols._lease import Ballot, LeaseConfig, LeaseHolder, LeaseTable
from microstatedb.protocols._membership import Membership, PeerDown, PeerUp, PhiAccrualDetector
from microstatedb.protocols._messages import (
    DeltaMessage,
    Message,
    Push,
    Request,
    Same,
    Summary,
    decode_message,
    encode_message,
)
from microstatedb.protocols._quorum import (
    AcceptorStorage,
    Change,
    Done,
    MemoryStorage,
    QuorumConfig,
    QuorumNode,
    QuorumOutput,
    QuorumStats,
    message_kind,
)
from microstatedb.protocols._saga import Orchestrator, SagaParticipant, SagaStats, SagaStep
from microstatedb.protocols._twophase import (
    Coordinator,
    Finished,
    Participant,
    TwoPhaseStats,
    TxnConfig,
    TxnMessage,
    TxnSend,
    decode_txn_message,
    encode_txn_message,
)

__all__ = [
    "AcceptorStorage",
    "AntiEntropy",
    "AntiEntropyConfig",
    "AntiEntropyStats",
    "Ballot",
    "Barrier",
    "Change",
    "Coordinator",
    "DeltaMessage",
    "Done",
    "Escrow",
    "EscrowStats",
    "Finished",
    "Journal",
    "LeaseConfig",
    "LeaseHolder",
    "LeaseTable",
    "Membership",
    "MemoryStorage",
    "Message",
    "Orchestrator",
    "Outcome",
    "Output",
    "Participant",
    "PeerDown",
    "PeerUp",
    "PhiAccrualDetector",
    "Push",
    "QuorumConfig",
    "QuorumNode",
    "QuorumOutput",
    "QuorumStats",
    "Request",
    "SagaParticipant",
    "SagaStats",
    "SagaStep",
    "Same",
    "Send",
    "StepResult",
    "Summary",
    "TwoPhaseStats",
    "TxnConfig",
    "TxnMessage",
    "TxnSend",
    "Write",
    "decode_message",
    "decode_txn_message",
    "encode_message",
    "encode_txn_message",
    "failed",
    "message_kind",
    "ok",
    "retry",
]
