"""Content digests and OCI chain ids: pure functions, no I/O.

A digest is kept as its canonical string ``sha256:<64 lowercase hex>``; only sha256 is
accepted, which is all the OCI image layout in practice uses and all the store writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from worker.images.errors import InvalidImage

ALGORITHM = "sha256"
_HEX = re.compile(r"[0-9a-f]{64}")


def is_digest(value: str) -> bool:
    algo, sep, hexpart = value.partition(":")
    return sep == ":" and algo == ALGORITHM and _HEX.fullmatch(hexpart) is not None


def check_digest(value: str) -> str:
    """``value`` if it is a canonical sha256 digest, else ``InvalidImage`` saying why."""
    if not is_digest(value):
        raise InvalidImage(f"not a sha256 digest: {value[:100]!r}", details={"digest": value[:100]})
    return value


def hex_of(digest: str) -> str:
    """The hex part of a checked digest (the blob's file name)."""
    return check_digest(digest).partition(":")[2]


def digest_bytes(data: bytes) -> str:
    import hashlib  # here: the CLI reads references (is_digest) on every run, hashes seldom

    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain id of each prefix of a layer stack, bottom first.

    ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
    Two images sharing their bottom layers share these ids, so each stack is unpacked once.
    """
    result: list[str] = []
    for diff_id in diff_ids:
        check_digest(diff_id)
        if not result:
            result.append(diff_id)
        else:
            result.append(digest_bytes(f"{result[-1]} {diff_id}".encode()))
    return result
