"""Compose's variable substitution, case by case, and where it applies in a file (values, not
keys; typed fields cast; .env under the environment; --env-file instead of .env)."""

from __future__ import annotations

import pytest

from cli.compose.dotenv import parse_env_file
from cli.compose.errors import ComposeError
from cli.compose.interpolation import InterpolationError, substitute
from tests.helpers.compose_files import PROJECT_DIR, load_texts

ENV = {"SET": "value", "EMPTY": "", "PORT": "8080"}

CASES = [
    ("plain", "plain"),
    ("$SET", "value"),
    ("${SET}", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET.txt", "value.txt"),
    ("$UNSET", ""),
    ("${UNSET}", ""),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${UNSET-default}", "default"),
    ("${SET:-default}", "value"),
    ("${SET:+other}", "other"),
    ("${EMPTY:+other}", ""),
    ("${EMPTY+other}", "other"),
    ("${UNSET+other}", ""),
    ("${UNSET:-${SET}}", "value"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-a b c}", "a b c"),
    ("$$", "$"),
    ("$$SET", "$SET"),
    ("$${SET}", "${SET}"),
    ("cost: $$5", "cost: $5"),
    ("${PORT}:80", "8080:80"),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_substitution(text: str, expected: str) -> None:
    assert substitute(text, ENV) == expected


ERRORS = [
    ("${UNSET:?must be set}", "required variable UNSET is unset: must be set"),
    ("${EMPTY:?must be set}", "required variable EMPTY is empty: must be set"),
    ("${UNSET?}", "required variable UNSET is unset"),
    ("${", "expected a variable name after ${"),
    ("${SET", "unexpected end after ${SET"),
    ("${SET:-x", "missing }"),
    ("$ alone", "a $ must be followed by a name"),
    ("${1BAD}", "expected a variable name"),
    ("${SET!x}", "unexpected ! after ${SET"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=message.replace("$", r"\$")
                       .replace("{", r"\{").replace("?", r"\?")):
        substitute(text, ENV)


def test_a_set_but_empty_variable_passes_the_plain_question_mark() -> None:
    assert substitute("${EMPTY?x}", ENV) == ""


def test_in_a_file_with_its_line_and_path() -> None:
    files = {"compose.yaml": """\
        services:
          web:
            image: "busybox:${TAG:-latest}"
            ports: ["${PORT}:80"]
            deploy: {replicas: "${N}"}
            init: "${INIT}"
            labels: {"$$literal": "${SET}"}
          db:
            image: "${DB_IMAGE:?set DB_IMAGE}"
        """}
    env = {"PORT": "8080", "N": "3", "INIT": "true", "SET": "v", "DB_IMAGE": "pg"}
    project = load_texts(files, env=env)
    web = project.services["web"]
    assert (web.image, web.ports[0].published, web.replicas, web.config["init"]) == \
        ("busybox:latest", "8080", 3, True)
    assert web.labels == {"$$literal": "v"}  # keys are not interpolated
    with pytest.raises(ComposeError) as caught:
        load_texts(files, env={**env, "DB_IMAGE": ""})
    assert str(caught.value) == ("compose.yaml:9: services.db.image: required variable "
                                 "DB_IMAGE is empty: set DB_IMAGE")


def test_dot_env_is_under_the_environment_and_env_file_replaces_it() -> None:
    files = {"compose.yaml": "services: {web: {image: 'x:${TAG}', user: '${WHO}'}}",
             ".env": "TAG=from-dotenv\nWHO=dotenv\n",
             "env/prod.env": "TAG=from-env-file\n"}
    assert load_texts(files).services["web"].image == "x:from-dotenv"
    assert load_texts(files, env={"TAG": "shell"}).services["web"].image == "x:shell"
    project = load_texts(files, env_files=[f"{PROJECT_DIR}/env/prod.env"])
    assert (project.services["web"].image, project.services["web"].config["user"]) == \
        ("x:from-env-file", "")


@pytest.mark.parametrize(("text", "expected"), [
    ("A=1", {"A": "1"}),
    ("export A=1", {"A": "1"}),
    ("A = spaced ", {"A": "spaced"}),
    ("A=value # comment", {"A": "value"}),
    ("A=value#not-a-comment", {"A": "value#not-a-comment"}),
    ("A='single $x # kept'", {"A": "single $x # kept"}),
    ('A="double\\nline"', {"A": "double\nline"}),
    ("A=", {"A": ""}),
    ("FROM_SHELL", {"FROM_SHELL": "shell"}),
    ("NOT_IN_SHELL", {}),
    ("# only a comment\n\n", {}),
])
def test_env_file_lines(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(".env", text, {"FROM_SHELL": "shell"}) == expected


def test_a_bad_env_file_line_names_its_line() -> None:
    with pytest.raises(ComposeError, match=r"^\.env:2: bad line '1BAD=x'"):
        parse_env_file(".env", "A=1\n1BAD=x\n", {})
