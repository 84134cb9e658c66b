"""The placement options of create/run become the spec's fields, repeatable ones in order."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cli.container_spec import (
    container_options,
    placement_options,
    spec_from_options,
    with_placement,
)
from protocol.specs import ContainerSpec, LogOptions


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


@pytest.mark.parametrize(("argv", "expected"), [
    ([], (0, 0, 0, 0)),
    (["--memory", "64m", "--cpus", "1"], (64 << 20, 1000, 64 << 20, 1000)),
    (["--memory", "64m", "--reserve-memory", "16m", "--reserve-cpu", "0.5"],
     (64 << 20, 0, 16 << 20, 500)),
])
def test_reservations_fill_the_spec(argv: list[str], expected: tuple[int, ...]) -> None:
    """``--reserve-memory``/``--reserve-cpu`` (docker service create's): what placement counts,
    beside the limits the runtime enforces."""
    @click.command()
    @container_options
    @placement_options
    def _spec(**options: object) -> None:
        resources = spec_from_options("x", (), options).resources
        click.echo(repr((resources.memory, resources.millicpus, resources.placed_memory,
                         resources.placed_millicpus)))

    result = CliRunner().invoke(_spec, argv)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr(expected)


@pytest.mark.parametrize(("argv", "expected"), [
    ([], "None"),
    (["--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--log-opt", "compress=true"],
     repr(LogOptions(max_size=1_000_000, max_file=2, compress=True))),
    (["--log-opt", "max-size"], "Invalid value for --log-opt: log option 'max-size' is not "
                                "KEY=VALUE"),
    (["--log-opt", "env=A"], "Invalid value for --log-opt: log option 'env': not "
                             "supported"),
])
def test_log_opt_fills_the_spec(argv: list[str], expected: str) -> None:
    """``--log-opt`` (docker run's, json-file's options): the log's rotation."""

    @click.command()
    @container_options
    @placement_options
    def _spec(**options: object) -> None:
        click.echo(repr(spec_from_options("x", (), options).log_options))

    result = CliRunner().invoke(_spec, argv)
    assert expected in result.output, result.output
