"""The helper's wire carries the runtime's records through msgspec hooks
(worker.runtime.wire): a record crosses as its JSON form and back; an object that is neither
a wire type nor a record is refused with a TypeError, as msgspec refuses one it does not know."""

from __future__ import annotations

import msgspec
import pytest

from worker.runtime import wire
from worker.runtime.state import OciState


def test_a_record_crosses_and_anything_else_is_refused() -> None:
    state = OciState(oci_version="1.0.2", id="c1", status="running", pid=7, bundle="/b")
    reply = wire.Reply(rid=3, result=wire.States([state]))
    assert wire.decode_reply(wire.encode(reply)) == reply
    with pytest.raises(TypeError, match="Encoding objects of type object is unsupported"):
        wire.encode(wire.Reply(rid=1, result=wire.States([object()])))  # type: ignore[list-item]
    # A record's fields are checked as msgspec checks its own: a ValidationError.
    good = msgspec.msgpack.decode(wire.encode(reply))
    good["result"]["states"][0]["id"] = 5
    with pytest.raises(msgspec.ValidationError, match="id"):
        wire.decode_reply(msgspec.msgpack.encode(good))
