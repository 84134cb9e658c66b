"""shoal's wire vocabulary: typed messages, errors, frames, the codec and versions. Pure: no I/O.

The names below are loaded on first use: a program that needs only ``protocol.errors`` (the
runtime's command line) does not pay for the message types, the codec or package metadata.
Nothing registers itself on import here: every error class of the tree lives in
``protocol.errors``, which ``error_class`` and ``error_from_info`` belong to.
"""

from __future__ import annotations

from protocol.lazyface import lazy_face

# A package face stays cheap to import: typing (~5 ms) only for the type checker.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from protocol.codec import MessageCodec as MessageCodec
    from protocol.codec import decode_error as decode_error
    from protocol.codec import decode_header as decode_header
    from protocol.codec import encode_error as encode_error
    from protocol.codec import encode_header as encode_header
    from protocol.errors import AddressError as AddressError
    from protocol.errors import ChannelClosed as ChannelClosed
    from protocol.errors import ChannelError as ChannelError
    from protocol.errors import Conflict as Conflict
    from protocol.errors import ConnectFailed as ConnectFailed
    from protocol.errors import ErrorInfo as ErrorInfo
    from protocol.errors import Forbidden as Forbidden
    from protocol.errors import Internal as Internal
    from protocol.errors import InvalidArgument as InvalidArgument
    from protocol.errors import LimitExceeded as LimitExceeded
    from protocol.errors import NotFound as NotFound
    from protocol.errors import PeerLost as PeerLost
    from protocol.errors import ProtocolError as ProtocolError
    from protocol.errors import RequestError as RequestError
    from protocol.errors import ShoalError as ShoalError
    from protocol.errors import Timeout as Timeout
    from protocol.errors import Unavailable as Unavailable
    from protocol.errors import Unsupported as Unsupported
    from protocol.errors import VersionMismatch as VersionMismatch
    from protocol.errors import error_class as error_class
    from protocol.errors import error_from_info as error_from_info
    from protocol.limits import SessionLimits as SessionLimits
    from protocol.messages import MESSAGE_TYPES as MESSAGE_TYPES
    from protocol.messages import Message as Message
    from protocol.refs import ByteReaderRef as ByteReaderRef
    from protocol.refs import ByteWriterRef as ByteWriterRef
    from protocol.refs import ChannelRef as ChannelRef
    from protocol.refs import ReceiverRef as ReceiverRef
    from protocol.refs import RefKind as RefKind
    from protocol.refs import SenderRef as SenderRef
    from protocol.version import PROTOCOL_VERSION as PROTOCOL_VERSION
    from protocol.version import SUPPORTED_VERSIONS as SUPPORTED_VERSIONS
    from protocol.version import choose_version as choose_version
    from protocol.version import package_version as package_version

# Public name -> the submodule that defines it.
_WHERE = {
    **dict.fromkeys(["MessageCodec", "decode_error", "decode_header", "encode_error",
                     "encode_header"], "codec"),
    **dict.fromkeys(["AddressError", "ChannelClosed", "ChannelError", "Conflict",
                     "ConnectFailed", "ErrorInfo", "Forbidden", "Internal", "InvalidArgument",
                     "LimitExceeded", "NotFound", "PeerLost", "ProtocolError", "RequestError",
                     "ShoalError", "Timeout", "Unavailable", "Unsupported", "VersionMismatch",
                     "error_class", "error_from_info"], "errors"),
    "SessionLimits": "limits",
    **dict.fromkeys(["MESSAGE_TYPES", "Message"], "messages"),
    **dict.fromkeys(["ByteReaderRef", "ByteWriterRef", "ChannelRef", "ReceiverRef", "RefKind",
                     "SenderRef"], "refs"),
    **dict.fromkeys(["PROTOCOL_VERSION", "SUPPORTED_VERSIONS", "choose_version",
                     "package_version"], "version"),
}

__getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)
