"""The handshake picks the newest common version or says clearly that there is none."""

from __future__ import annotations

import pytest

from protocol.errors import VersionMismatch
from protocol.version import choose_version


@pytest.mark.parametrize(
    ("offered", "supported", "expected"),
    [([1], (1,), 1), ([1, 2, 3], (2, 1), 2), ([3, 1], (1, 3), 3)],
)
def test_newest_common_version_wins(offered: list[int], supported: tuple[int, ...],
                                    expected: int) -> None:
    assert choose_version(offered, supported) == expected


def test_no_common_version_names_both_sides() -> None:
    with pytest.raises(VersionMismatch) as info:
        choose_version([7, 8], (1,))
    assert "7, 8" in str(info.value)
    assert "1" in str(info.value)
    assert info.value.details == {"peer_versions": "7, 8", "our_versions": "1"}
