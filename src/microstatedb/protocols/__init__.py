"""Sans-I/O protocol state machines: messages and timer ticks in, messages and effects out.

Nothing here opens a socket or reads a clock: the deterministic simulator
(``microstatedb.runtime.sim``) and the asyncio runtime drive the same objects, passing the
time in. This package holds delta anti-entropy with gossip, Merkle summaries and
back-pressure, and membership with a phi-accrual failure detector.
"""

from microstatedb.protocols._antientropy import (
    AntiEntropy,
    AntiEntropyConfig,
    AntiEntropyStats,
    Output,
    Send,
)
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

__all__ = [
    "AntiEntropy",
    "AntiEntropyConfig",
    "AntiEntropyStats",
    "DeltaMessage",
    "Membership",
    "Message",
    "Output",
    "PeerDown",
    "PeerUp",
    "PhiAccrualDetector",
    "Push",
    "Request",
    "Same",
    "Send",
    "Summary",
    "decode_message",
    "encode_message",
]
