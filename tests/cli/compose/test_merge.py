"""Several -f files merged by the compose-spec's rules: each case a base service, an override
and the service they make."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.compose_files import load_texts

CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("scalars are replaced", "image: a\nuser: root", "image: b",
     {"image": "b", "user": "root"}),
    ("command and entrypoint are replaced, not appended",
     "image: a\ncommand: [a, b]\nentrypoint: [sh, -c]", "command: c d\nentrypoint: [bash]",
     {"image": "a", "command": ["c", "d"], "entrypoint": ["bash"]}),
    ("mappings are merged, whatever syntax each file used",
     "image: a\nenvironment: [A=1, B=1]\nlabels: {x: '1'}",
     "environment: {B: '2', C: '3'}\nlabels: [y=2]",
     {"image": "a", "environment": {"A": "1", "B": "2", "C": "3"},
      "labels": {"x": "1", "y": "2"}}),
    ("ports are unique by host ip, published, target and protocol",
     "image: a\nports: ['8080:80', '9090:90', '53:53/udp']",
     "ports: ['8080:80', '53:53/tcp', '127.0.0.1:8080:80']",
     {"image": "a", "ports": [
         {"mode": "ingress", "target": 80, "protocol": "tcp", "published": "8080"},
         {"mode": "ingress", "target": 90, "protocol": "tcp", "published": "9090"},
         {"mode": "ingress", "target": 53, "protocol": "udp", "published": "53"},
         {"mode": "ingress", "target": 53, "protocol": "tcp", "published": "53"},
         {"mode": "ingress", "target": 80, "protocol": "tcp", "published": "8080",
          "host_ip": "127.0.0.1"}]}),
    ("volumes are unique by target: the override's wins",
     "image: a\nvolumes: ['/a:/data', '/b:/logs']", "volumes: ['/c:/data:ro']",
     {"image": "a", "volumes": [
         {"type": "bind", "source": "/c", "target": "/data", "read_only": True},
         {"type": "bind", "source": "/b", "target": "/logs"}]}),
    ("other sequences are appended without repeats",
     "image: a\ndns: [1.1.1.1]\ncap_add: [NET_ADMIN]",
     "dns: [1.1.1.1, 8.8.8.8]\ncap_add: [SYS_TIME]",
     {"image": "a", "dns": ["1.1.1.1", "8.8.8.8"], "cap_add": ["NET_ADMIN", "SYS_TIME"]}),
    ("depends_on lists and maps merge by service",
     "image: a\ndepends_on: [db]", "depends_on: {cache: {condition: service_healthy}}",
     {"image": "a", "depends_on": {
         "db": {"condition": "service_started", "required": True},
         "cache": {"condition": "service_healthy", "required": True}}}),
    ("nested mappings merge deeply, healthcheck.test is replaced",
     "image: a\ndeploy: {replicas: 2, resources: {limits: {cpus: '1'}}}\n"
     "healthcheck: {test: [CMD, a], retries: 3}",
     "deploy: {resources: {limits: {memory: 1g}}}\nhealthcheck: {test: [CMD, b]}",
     {"image": "a", "deploy": {"replicas": 2, "resources": {"limits": {"cpus": "1",
                                                                      "memory": "1g"}}},
      "healthcheck": {"test": ["CMD", "b"], "retries": 3}}),
]


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


@pytest.mark.parametrize(("case", "base", "override", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_merge(case: str, base: str, override: str, expected: dict[str, Any]) -> None:
    others = "  db: {image: x}\n  cache: {image: x}\n"
    files = {"compose.yaml": f"services:\n{others}  s:\n{_indent(base)}\n",
             "compose.override.yaml": f"services:\n  s:\n{_indent(override)}\n"}
    project = load_texts(files)
    assert project.services["s"].config == expected


def test_a_later_file_adds_services_and_top_level_sections() -> None:
    project = load_texts({
        "a.yml": "services: {web: {image: a}}\nnetworks: {front: {driver: bridge}}",
        "b.yml": "version: '3'\nservices: {db: {image: b}}\nnetworks: {front: {internal: true}}",
    })
    assert sorted(project.services) == ["db", "web"]
    assert project.networks == {"front": {"driver": "bridge", "internal": True}}
    assert project.name == "app"
