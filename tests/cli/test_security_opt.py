"""--security-opt on create/run: seccomp=unconfined or a profile file, no-new-privileges;
anything else refused."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.container_spec import container_options, placement_options, spec_from_options
from protocol.errors import InvalidSpec
from protocol.specs import ContainerSpec
from protocol.validation import check_spec


@click.command()
@container_options
@placement_options
def _echo(**options: object) -> None:
    click.echo(spec_from_options("busybox", ("true",), options).seccomp)


def test_default_unconfined_and_a_profile_file(tmp_path: Path) -> None:
    assert CliRunner().invoke(_echo, []).output == "\n"  # "": Docker's default profile
    unconfined = CliRunner().invoke(_echo, ["--security-opt", "seccomp=unconfined"])
    assert unconfined.output == "unconfined\n"
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    given = CliRunner().invoke(_echo, ["--security-opt", f"seccomp={profile}"])
    assert json.loads(given.output) == {"defaultAction": "SCMP_ACT_ALLOW"}


@click.command()
@container_options
@placement_options
def _no_new_privileges(**options: object) -> None:
    click.echo(spec_from_options("busybox", ("true",), options).no_new_privileges)


@pytest.mark.parametrize(("opts", "expected"), [
    ([], "False"),
    (["no-new-privileges"], "True"),
    (["no-new-privileges=true"], "True"),
    (["no-new-privileges:true"], "True"),  # Docker takes ':' too
    (["no-new-privileges", "no-new-privileges=false"], "False"),
    (["seccomp=unconfined", "no-new-privileges"], "True"),
])
def test_no_new_privileges(opts: list[str], expected: str) -> None:
    args = [a for opt in opts for a in ("--security-opt", opt)]
    result = CliRunner().invoke(_no_new_privileges, args)
    assert result.exit_code == 0, result.output
    assert result.output == f"{expected}\n"


@pytest.mark.parametrize(("opt", "words"), [
    ("no-new-privileges=maybe", "only seccomp=unconfined|PROFILE.json and no-new-privileges"),
    ("apparmor=unconfined", "only seccomp=unconfined|PROFILE.json"),
    ("seccomp=/nonexistent.json", "cannot read seccomp profile"),
])
def test_other_options_are_refused_with_the_reason(opt: str, words: str) -> None:
    result = CliRunner().invoke(_echo, ["--security-opt", opt])
    assert result.exit_code == 2
    assert words in result.output


def test_a_profile_that_is_not_json_is_refused_before_sending() -> None:
    with pytest.raises(InvalidSpec, match="seccomp"):
        check_spec(ContainerSpec(image="x", seccomp="{not json"))
    with pytest.raises(InvalidSpec, match="defaultAction"):
        check_spec(ContainerSpec(image="x", seccomp="[]"))
