"""Sans-I/O protocol state machines: messages and timer ticks in, messages and effects out.

Nothing here opens a socket or reads a clock: the deterministic simulator
(``microstatedb.runtime.sim``) and the asyncio runtime drive the same objects, passing the
time in. This package holds delta anti-entropy with gossip, Merkle summaries and
back-pressure, membership with a phi-accrual failure detector, and per-key consensus without
a log (CASPaxos) with read leases for linearizable registers.
"""

from microstatedb.protocols._antientropy import (
    AntiEntropy,
    AntiEntropyConfig,
    AntiEntropyStats,
    Output,
    Send,
)
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

__all__ = [
    "AcceptorStorage",
    "AntiEntropy",
    "AntiEntropyConfig",
    "AntiEntropyStats",
    "Ballot",
    "Change",
    "DeltaMessage",
    "Done",
    "LeaseConfig",
    "LeaseHolder",
    "LeaseTable",
    "Membership",
    "MemoryStorage",
    "Message",
    "Output",
    "PeerDown",
    "PeerUp",
    "PhiAccrualDetector",
    "Push",
    "QuorumConfig",
    "QuorumNode",
    "QuorumOutput",
    "QuorumStats",
    "Request",
    "Same",
    "Send",
    "Summary",
    "decode_message",
    "encode_message",
    "message_kind",
]
