"""Sizes, counts and lengths that bound what a peer may send.

Schema limits (string and collection lengths) are compile-time constants used in the message
types; session limits (frame size, open channels, windows) travel in the handshake and may be
tuned per endpoint with ``SessionLimits``; ``PeerBounds`` is what an endpoint grants a peer
whatever the peer announces (local policy: it never travels).
"""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
import msgspec

# Schema limits, enforced by the decoder of every message type.
MAX_NAME_LEN = 255  # ids, names, codes, label keys, image references
MAX_TEXT_LEN = 64 * 1024  # free text: error messages, label values, env entries
MAX_PROFILE_LEN = 256 * 1024  # a seccomp profile's JSON (Docker's default is ~20 KiB)
MAX_ARGS = 4096  # command and entrypoint argv entries
MAX_ENV = 4096  # environment entries
MAX_LABELS = 1024  # labels on a container or node
MAX_PORTS = 1024  # port mappings of one container
MAX_RULES = 256  # constraints and affinities of one container
MAX_TAGS = 1024  # tags of one image
MAX_LAYERS = 1024  # layers of one image (Docker's overlay stops at 128)
MAX_HELD_IMAGES = 4096  # image tags and ids a node lists at join
MAX_NODE_VOLUMES = 4096  # named volumes a node lists at join and when they change
MAX_ERROR_DETAILS = 64
MAX_LIST_ITEMS = 100_000  # entries of a list reply (containers, nodes); larger lists are paged
MAX_BATCH = 10_000  # containers submitted in one request
MAX_MANAGERS = 64  # scheduler addresses a worker is told of

# Deepest nesting a valid message can have: the schema has no recursive types, so this is a
# property of the types; unknown (newer) fields are skipped by a decoder whose recursion is
# guarded, and anything deeper is refused as a ProtocolError.
MAX_DEPTH = 8

# Session limits defaults.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024  # one frame body (message or stream chunk)
DEFAULT_MAX_CHANNELS = 1024  # channels open at once on one session (both directions)
DEFAULT_WINDOW = 1024 * 1024  # receive window of a channel, in payload bytes
STREAM_CHUNK = 64 * 1024  # byte streams are cut into chunks of at most this size
# A receiver grants consumed bytes back once it has consumed half its window or this much,
# whichever is less: so a sender that uses less credit than the peer announced (PeerBounds)
# still gets its credit back, and can rely on it after sending this much on a channel.
MAX_GRANT_BATCH = 256 * 1024

# Peer bounds defaults: what a peer may make this side spend, whatever it announces.
MAX_PEER_WINDOW = 4 * 1024 * 1024  # credit per channel we extend ourselves when sending
SEND_BUDGET = 16 * 1024 * 1024  # un-acknowledged bytes queued for one peer, all channels
MAX_SILENCE = 30.0  # seconds of silence a peer's slow heartbeat may stretch our timeout to


class SessionLimits(msgspec.Struct, frozen=True):
    """Per-session bounds; each side announces its own in the handshake."""

    max_frame: int = DEFAULT_MAX_FRAME
    max_channels: int = DEFAULT_MAX_CHANNELS
    window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if not 1024 <= self.max_frame <= 1 << 30:
            raise ValueError("max_frame must be between 1 KiB and 1 GiB")
        if not 16 <= self.max_channels <= 1 << 24:
            raise ValueError("max_channels must be between 16 and 16M")
        if not 1024 <= self.window <= 1 << 30:
            raise ValueError("window must be between 1 KiB and 1 GiB")


class PeerBounds(msgspec.Struct, frozen=True):
    """What this endpoint lets a peer cost it, whatever the peer announces; never sent.

    ``max_window``: the credit per channel used when sending, at most (the peer's own window
    when smaller). ``send_budget``: un-acknowledged bytes on all the session's channels
    together; beyond it a channel that already has ``MAX_GRANT_BATCH`` (or half the peer's
    window) in flight waits for credit, so a peer that never reads costs at most
    ``send_budget + max_channels * (MAX_GRANT_BATCH + one frame)``. ``max_silence``: the
    longest a peer's announced heartbeat can stretch the session's silence limit.
    """

    max_window: int = MAX_PEER_WINDOW
    send_budget: int = SEND_BUDGET
    max_silence: float = MAX_SILENCE

    def __post_init__(self) -> None:
        if not MAX_GRANT_BATCH <= self.max_window <= 1 << 30:
            raise ValueError(f"max_window must be between {MAX_GRANT_BATCH} bytes and 1 GiB")
        if not self.max_window <= self.send_budget <= 1 << 40:
            raise ValueError("send_budget must be between max_window and 1 TiB")
        if not 0 < self.max_silence <= 24 * 3600:
            raise ValueError("max_silence must be positive and at most a day")


DEFAULT_BOUNDS = PeerBounds()
