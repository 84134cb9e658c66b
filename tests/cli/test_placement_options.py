"""The placement options of create/run become the spec's fields, repeatable ones in order."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cli.container_spec import placement_options, with_placement
from protocol.specs import ContainerSpec


@click.command()
@placement_options
def _echo(**options: object) -> None:
    spec = with_placement(ContainerSpec(image="x", name="web"), options)
    click.echo(repr((spec.preferences, spec.constraints, spec.max_per_node)))


@pytest.mark.parametrize(("argv", "expected"), [
    ([], ([], [], 0)),
    (["--placement-pref", "spread=node.labels.zone"], (["spread=node.labels.zone"], [], 0)),
    (["--placement-pref", "spread=node.labels.zone", "--placement-pref",
      "spread=node.labels.rack", "-c", "zone!=c", "--max-per-node", "2"],
     (["spread=node.labels.zone", "spread=node.labels.rack"], ["zone!=c"], 2)),
])
def test_placement_options_fill_the_spec(argv: list[str], expected: tuple[object, ...]) -> None:
    result = CliRunner().invoke(_echo, argv)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr(expected)
