"""Errors cross the wire with stable codes and come back as the same class."""

from __future__ import annotations

import msgspec
import pytest

from protocol import errors
from protocol.errors import ErrorInfo, ShoalError, error_class, error_from_info, known_codes


@pytest.mark.parametrize(("code", "cls"), sorted(known_codes().items()))
def test_every_error_round_trips_as_its_own_class(code: str, cls: type[ShoalError]) -> None:
    original = cls("it broke", details={"node_id": "n1"})
    wire = msgspec.msgpack.encode(original.to_info())
    back = error_from_info(msgspec.msgpack.decode(wire, type=ErrorInfo))
    assert type(back) is cls
    assert back.wire_code == code
    assert back.message == "it broke"
    assert back.details == {"node_id": "n1"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("channel.closed.by_peer", errors.ChannelClosed),
        ("request.not_found.martian_thing", errors.NotFound),
        ("protocol.version", errors.VersionMismatch),
        ("martian", ShoalError),
    ],
)
def test_unknown_codes_map_to_the_nearest_known_ancestor(code: str, expected: type) -> None:
    assert error_class(code) is expected
    back = error_from_info(ErrorInfo(code=code, message="m"))
    assert type(back) is expected
    assert back.wire_code == code  # the newer peer's code is kept, to show and to pass on


def test_an_empty_code_is_the_root_error() -> None:
    back = error_from_info(ErrorInfo(code="", message="m"))
    assert type(back) is ShoalError
    assert back.wire_code == "shoal"


def test_every_branch_is_a_shoal_error() -> None:
    for cls in known_codes().values():
        assert issubclass(cls, ShoalError)
    assert issubclass(errors.VersionMismatch, errors.ProtocolError)
    assert issubclass(errors.PeerLost, errors.ChannelError)
    assert issubclass(errors.NotFound, errors.RequestError)


def test_a_code_cannot_be_registered_twice() -> None:
    with pytest.raises(TypeError, match="already used"):
        type("Again", (ShoalError,), {"code": "request.not_found"})


def test_long_messages_are_cut_to_the_wire_limit() -> None:
    info = errors.Internal("x" * 200_000).to_info()
    msgspec.msgpack.decode(msgspec.msgpack.encode(info), type=ErrorInfo)  # still valid
