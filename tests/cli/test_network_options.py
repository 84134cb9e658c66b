"""``network create --opt``: Docker's driver options are refused, each saying why (``encrypted``
names overlay encryption as not built yet), before anything is asked of a daemon."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.networks import network


@pytest.mark.parametrize(("option", "says"), [
    ("encrypted", "--opt encrypted: overlay encryption (IPsec between the hosts"),
    ("encrypted=true", "--opt encrypted: overlay encryption"),
    ("com.docker.network.driver.mtu=1400", "shoal's network drivers take no options"),
])
def test_driver_options_are_refused_with_the_reason(option: str, says: str) -> None:
    result = CliRunner().invoke(network, ["create", "-H", "tcp://127.0.0.1:1", "--driver",
                                          "overlay", "--opt", option, "n1"])
    assert result.exit_code == 1
    assert says in result.output
