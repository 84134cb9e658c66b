"""The channel and session state tables: which frame is legal in which state, and what follows.

Channel ends are one-way. Seen from this side, an end either SENDs (we write data, the peer
grants credit) or RECVs (the peer writes data, we grant credit). An end is OPEN until it ends;
ended ends leave the table at once (a late frame for an id we used before is stale and dropped).
"""

from __future__ import annotations

import enum
from typing import Final


class Role(enum.Enum):
    SEND = "send"
    RECV = "recv"


class Input(enum.Enum):
    """What can happen to an open channel end."""

    PEER_DATA = "peer data"  # Data or Chunk without last
    PEER_LAST = "peer data (last)"  # Data or Chunk with last
    PEER_CLOSE = "peer close"
    PEER_ABORT = "peer abort"
    PEER_CREDIT = "peer credit"
    LOCAL_SEND = "local send"
    LOCAL_LAST = "local send (last)"
    LOCAL_CLOSE = "local close"
    LOCAL_ABORT = "local abort"


class EndOutcome(enum.Enum):
    STAY = "stay open"  # the end stays open
    END = "end"  # the end is done and leaves the table
    VIOLATION = "violation"  # the peer broke the protocol (frame illegal for this role)
    MISUSE = "misuse"  # local code broke the rules (a bug on this side: raise)


# (role, input) → outcome. Every pair is listed, so the table is the whole truth.
CHANNEL_TABLE: Final[dict[tuple[Role, Input], EndOutcome]] = {
    (Role.SEND, Input.PEER_DATA): EndOutcome.VIOLATION,
    (Role.SEND, Input.PEER_LAST): EndOutcome.VIOLATION,
    (Role.SEND, Input.PEER_CLOSE): EndOutcome.VIOLATION,
    (Role.SEND, Input.PEER_ABORT): EndOutcome.END,  # the reader went away or failed
    (Role.SEND, Input.PEER_CREDIT): EndOutcome.STAY,
    (Role.SEND, Input.LOCAL_SEND): EndOutcome.STAY,
    (Role.SEND, Input.LOCAL_LAST): EndOutcome.END,
    (Role.SEND, Input.LOCAL_CLOSE): EndOutcome.END,
    (Role.SEND, Input.LOCAL_ABORT): EndOutcome.END,
    (Role.RECV, Input.PEER_DATA): EndOutcome.STAY,
    (Role.RECV, Input.PEER_LAST): EndOutcome.END,
    (Role.RECV, Input.PEER_CLOSE): EndOutcome.END,
    (Role.RECV, Input.PEER_ABORT): EndOutcome.END,
    (Role.RECV, Input.PEER_CREDIT): EndOutcome.VIOLATION,
    (Role.RECV, Input.LOCAL_SEND): EndOutcome.MISUSE,
    (Role.RECV, Input.LOCAL_LAST): EndOutcome.MISUSE,
    (Role.RECV, Input.LOCAL_CLOSE): EndOutcome.MISUSE,
    (Role.RECV, Input.LOCAL_ABORT): EndOutcome.END,  # the reader cancels
}


class SessionState(enum.Enum):
    AWAIT_HELLO = "await hello"  # listener side, before the dialer's Hello
    AWAIT_WELCOME = "await welcome"  # dialer side, Hello sent
    OPEN = "open"
    ENDED = "ended"


class SessionInput(enum.Enum):
    HELLO = "hello"
    WELCOME = "welcome"
    CHANNEL_FRAME = "channel frame"  # Data, Chunk, Credit, Close, Abort
    PING = "ping"
    FAIL = "fail"
    BYE = "bye"


# (state, input) → next state, or None when the frame is a violation in that state.
SESSION_TABLE: Final[dict[tuple[SessionState, SessionInput], SessionState | None]] = {
    (SessionState.AWAIT_HELLO, SessionInput.HELLO): SessionState.OPEN,
    (SessionState.AWAIT_HELLO, SessionInput.WELCOME): None,
    (SessionState.AWAIT_HELLO, SessionInput.CHANNEL_FRAME): None,
    (SessionState.AWAIT_HELLO, SessionInput.PING): None,
    (SessionState.AWAIT_HELLO, SessionInput.FAIL): SessionState.ENDED,
    (SessionState.AWAIT_HELLO, SessionInput.BYE): SessionState.ENDED,
    (SessionState.AWAIT_WELCOME, SessionInput.HELLO): None,
    (SessionState.AWAIT_WELCOME, SessionInput.WELCOME): SessionState.OPEN,
    (SessionState.AWAIT_WELCOME, SessionInput.CHANNEL_FRAME): None,
    (SessionState.AWAIT_WELCOME, SessionInput.PING): SessionState.AWAIT_WELCOME,
    (SessionState.AWAIT_WELCOME, SessionInput.FAIL): SessionState.ENDED,
    (SessionState.AWAIT_WELCOME, SessionInput.BYE): SessionState.ENDED,
    (SessionState.OPEN, SessionInput.HELLO): None,
    (SessionState.OPEN, SessionInput.WELCOME): None,
    (SessionState.OPEN, SessionInput.CHANNEL_FRAME): SessionState.OPEN,
    (SessionState.OPEN, SessionInput.PING): SessionState.OPEN,
    (SessionState.OPEN, SessionInput.FAIL): SessionState.ENDED,
    (SessionState.OPEN, SessionInput.BYE): SessionState.ENDED,
    # Nothing moves an ended session; frames after the end are dropped by the core.
}
