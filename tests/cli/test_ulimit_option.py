"""``--ulimit NAME=SOFT[:HARD]`` of ``run``/``create``: parsed into the spec's ulimits, a bad
one refused by name before anything is sent."""

from __future__ import annotations

import click
import pytest

from cli.container_spec import parse_ulimit
from protocol.specs import Ulimit


@pytest.mark.parametrize(("text", "ulimit"), [
    ("nofile=1024", Ulimit(name="nofile", soft=1024, hard=1024)),
    ("nofile=1024:2048", Ulimit(name="nofile", soft=1024, hard=2048)),
    ("core=-1", Ulimit(name="core", soft=-1, hard=-1)),
    ("core=0:-1", Ulimit(name="core", soft=0, hard=-1)),
])
def test_parsed(text: str, ulimit: Ulimit) -> None:
    assert parse_ulimit(text) == ulimit


@pytest.mark.parametrize(("text", "message"), [
    ("nofile", r"expected NAME=SOFT\[:HARD\]"),
    ("nofile=many", r"expected NAME=SOFT\[:HARD\]"),
    ("files=1", "Invalid enum value 'files'"),
    ("nofile=-2", "Expected `int` >= -1"),
])
def test_refused(text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        parse_ulimit(text)
