"""The key layout under ``/shoal/v1/``: pure functions from (kind, id) to etcd keys and back.

See LAYOUT.md beside this module for the layout itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import InvalidArgument
from protocol.limits import MAX_NAME_LEN

DEFAULT_ROOT = "/shoal/v1/"

# Collections of records; each lives under ROOT + name + "/".
KINDS = ("nodes", "containers", "apps", "networks")
LEADER = "leader"


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key: etcd reads "\0" as "to the end of the keyspace"


def check_id(record_id: str) -> None:
    """Refuse ids that would escape their collection or make keys ambiguous."""
    if not record_id or len(record_id) > MAX_NAME_LEN:
        raise InvalidArgument(f"record id must be 1..{MAX_NAME_LEN} characters",
                              details={"id": record_id[:64]})
    if "/" in record_id or "\0" in record_id:
        raise InvalidArgument("record id must not contain '/' or NUL",
                              details={"id": record_id[:64]})


@dataclass(frozen=True, slots=True)
class Layout:
    """Keys for one cluster. ``root`` lets tests and several clusters share one etcd."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        if not self.root.startswith("/") or not self.root.endswith("/"):
            raise InvalidArgument("store root must start and end with '/'",
                                  details={"root": self.root})

    def kind_prefix(self, kind: str) -> bytes:
        return f"{self.root}{kind}/".encode()

    def key(self, kind: str, record_id: str) -> bytes:
        check_id(record_id)
        return f"{self.root}{kind}/{record_id}".encode()

    def split(self, key: bytes) -> tuple[str, str] | None:
        """(kind, id) of a record key under this root, or None for any other key."""
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return None
        if not text.startswith(self.root):
            return None
        kind, sep, record_id = text[len(self.root):].partition("/")
        if not sep or not record_id or "/" in record_id:
            return None
        return kind, record_id

    @property
    def leader_key(self) -> bytes:
        return f"{self.root}{LEADER}".encode()

    @property
    def all(self) -> bytes:
        return self.root.encode()
