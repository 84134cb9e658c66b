"""Sizes, counts and lengths that bound what a peer may send.

Schema limits (string and collection lengths) are compile-time constants used in the message
types; session limits (frame size, open channels, windows) travel in the handshake and may be
tuned per endpoint with ``SessionLimits``.
"""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
import msgspec

# Schema limits, enforced by the decoder of every message type.
MAX_NAME_LEN = 255  # ids, names, codes, label keys, image references
MAX_TEXT_LEN = 64 * 1024  # free text: error messages, label values, env entries
MAX_ARGS = 4096  # command and entrypoint argv entries
MAX_ENV = 4096  # environment entries
MAX_LABELS = 1024  # labels on a container or node
MAX_PORTS = 1024  # port mappings of one container
MAX_RULES = 256  # constraints and affinities of one container
MAX_TAGS = 1024  # tags of one image
MAX_LAYERS = 1024  # layers of one image (Docker's overlay stops at 128)
MAX_HELD_IMAGES = 4096  # image tags and ids a node lists at join
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
DEFAULT_MAX_CHANNELS = 65_536  # channels open at once on one session
DEFAULT_WINDOW = 1024 * 1024  # receive window of a channel, in payload bytes
STREAM_CHUNK = 64 * 1024  # byte streams are cut into chunks of at most this size


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
