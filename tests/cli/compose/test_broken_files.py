"""Broken files: each case a file and the exact message, which names the file, the line and
the path."""

from __future__ import annotations

import pytest

from cli.compose.errors import ComposeError
from tests.helpers.compose_files import load_texts

BROKEN: list[tuple[str, str, str]] = [
    ("not YAML", "services:\n  web: [a\n",
     "compose.yaml:3: not valid YAML: did not find expected ',' or ']'"),
    ("empty", "", "compose.yaml:1: empty file"),
    ("a list at the top", "- a\n", "compose.yaml:1: the top level must be a mapping"),
    ("a duplicate key", "services:\n  web: {image: a}\n  web: {image: b}\n",
     "compose.yaml:3: services.web: duplicate key 'web' (first on line 2)"),
    ("an unknown service key", "services:\n  web:\n    image: a\n    imagee: b\n",
     "compose.yaml:4: services.web.imagee: unknown key"),
    ("an unknown top-level key", "services: {}\nservice: {}\n",
     "compose.yaml:2: service: unknown key"),
    ("a wrong type in a list", "services:\n  web:\n    image: a\n    ports:\n      - 80\n"
     "      - {target: 80, published: [1]}\n",
     "compose.yaml:6: services.web.ports[1].published: must be a string or an integer, "
     "not a list"),
    ("a bad short port", "services:\n  web:\n    image: a\n    ports: ['80:http']\n",
     "compose.yaml:4: services.web.ports[0]: bad port '80:http': expected "
     "[[HOST_IP:]PUBLISHED:]TARGET[/PROTOCOL]"),
    ("a bad volume option", "services:\n  web:\n    image: a\n    volumes:\n"
     "      - ./a:/b:rx\n", "compose.yaml:5: services.web.volumes[0]: bad volume "
     "'./a:/b:rx': unknown option 'rx'"),
    ("a bad depends_on condition", "services:\n  a: {image: x}\n  web:\n    image: a\n"
     "    depends_on:\n      a: {condition: healthy}\n",
     "compose.yaml:6: services.web.depends_on.a.condition: 'healthy' is not one of "
     "['service_started', 'service_healthy', 'service_completed_successfully']"),
    ("an undefined dependency", "services:\n  web:\n    image: a\n    depends_on: [db]\n",
     "compose.yaml:4: services.web.depends_on.db: depends on an undefined service 'db'"),
    ("an undefined network", "services:\n  web:\n    image: a\n    networks: [back]\n",
     "compose.yaml:4: services.web.networks.back: uses an undefined network 'back'"),
    ("a dependency cycle", "services:\n  a: {image: x, depends_on: [b]}\n"
     "  b: {image: x, depends_on: [a]}\n",
     "compose.yaml:2: services.a.depends_on: dependency cycle: a -> b -> a"),
    ("neither image nor build", "services:\n  web: {command: x}\n",
     "compose.yaml:2: services.web: has neither image nor build"),
    ("a required variable", "services:\n  web:\n    image: ${IMAGE?no image}\n",
     "compose.yaml:3: services.web.image: required variable IMAGE is unset: no image"),
    ("a bad interpolation", "services:\n  web:\n    image: a\n    user: ${USER\n",
     "compose.yaml:4: services.web.user: invalid interpolation format in '${USER': "
     "unexpected end after ${USER"),
    ("a bad command string", "services:\n  web:\n    image: a\n    command: echo 'open\n",
     "compose.yaml:4: services.web.command: cannot split into words: No closing quotation"),
    ("a fig file with a bad key", "web:\n  image: a\n  nett: host\n",
     "compose.yaml:3: services.web.nett: unknown key"),
]


@pytest.mark.parametrize(("case", "text", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_file(case: str, text: str, message: str) -> None:
    with pytest.raises(ComposeError) as caught:
        load_texts({"compose.yaml": text})
    assert str(caught.value) == message


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    with pytest.raises(ComposeError) as caught:
        load_texts({"compose.yaml": "services:\n  web:\n    image: 1\n    bogus: x\n"
                                    "  db:\n    image: a\n    restart: [no]\n"})
    assert str(caught.value).splitlines() == [
        "compose.yaml:3: services.web.image: must be a string, not a number",
        "compose.yaml:4: services.web.bogus: unknown key",
        "compose.yaml:7: services.db.restart: must be a string, not a list",
    ]


def test_an_error_in_a_second_file_names_that_file() -> None:
    with pytest.raises(ComposeError) as caught:
        load_texts({"compose.yaml": "services: {web: {image: a}}\n",
                    "override.yml": "services:\n  web:\n    ports: {a: 1}\n"})
    assert str(caught.value) == "override.yml:3: services.web.ports: must be a list, not a " \
                                "mapping"


def test_aliases_cannot_blow_a_small_file_up() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    with pytest.raises(ComposeError, match="too large or too deeply nested"):
        load_texts({"compose.yaml": "\n".join(["x-bomb:", *("  " + line for line in lines)])})
