"""``shoal version`` prints the package and protocol versions."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main


def test_version_command() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0
    assert "protocol 1" in result.output
