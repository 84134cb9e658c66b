"""``LogOptions.parse``: Docker's json-file options as its driver checks them, one parser for
``--log-opt``, Compose's ``logging.options`` and the Docker API's ``LogConfig.Config``."""

from __future__ import annotations

import re

import pytest

from protocol.specs import LogOptions


@pytest.mark.parametrize(("options", "parsed"), [
    ({}, LogOptions()),
    ({"max-size": "10m"}, LogOptions(max_size=10_000_000)),  # decimal, as FromHumanSize
    ({"max-size": "1.5k", "max-file": "3"}, LogOptions(max_size=1500, max_file=3)),
    ({"max-size": "2MB", "max-file": "2", "compress": "true"},
     LogOptions(max_size=2_000_000, max_file=2, compress=True)),
    ({"max-size": "100", "compress": "false"}, LogOptions(max_size=100)),
    ({"max-size": "1 MiB"}, LogOptions(max_size=1_000_000)),
])
def test_parsed(options: dict[str, str], parsed: LogOptions) -> None:
    assert LogOptions.parse(options) == parsed


@pytest.mark.parametrize(("options", "message"), [
    ({"max-size": "0"}, "max-size: must be a positive number"),
    ({"max-size": "lots"}, "max-size 'lots': expected a size such as 10m"),
    ({"max-file": "0"}, "max-file '0': expected 1 to 100"),
    ({"max-file": "x"}, "max-file 'x': expected 1 to 100"),
    ({"compress": "yes"}, "compress 'yes': expected true or false"),
    ({"max-size": "1m", "compress": "true"},
     "compress: cannot be true when max-file is less than 2 or max-size is not set"),
    ({"max-file": "3", "compress": "true"},
     "compress: cannot be true when max-file is less than 2 or max-size is not set"),
    ({"tag": "{{.Name}}"}, "'tag': not supported: shoal's json-file logs take "
                           "max-size, max-file, compress (entries carry no labels, env or tag)"),
])
def test_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^log option {re.escape(message)}$"):
        LogOptions.parse(options)


def test_shown_as_docker_shows_them() -> None:
    assert LogOptions(max_size=1000, max_file=3, compress=True).as_docker() == {
        "max-size": "1000", "max-file": "3", "compress": "true"}
    assert LogOptions().as_docker() == {}
