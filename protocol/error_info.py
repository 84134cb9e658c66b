"""An error as it crosses the wire: ``ShoalError.to_info`` makes one, ``error_from_info``
(protocol.errors) rebuilds the exception from it."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated

import msgspec

from protocol.limits import MAX_ERROR_DETAILS, MAX_NAME_LEN, MAX_TEXT_LEN


class ErrorInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """An error as it crosses the wire."""

    code: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
    message: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LEN)] = ""
    details: Annotated[
        dict[
            Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)],
            Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LEN)],
        ],
        msgspec.Meta(max_length=MAX_ERROR_DETAILS),
    ] = {}
