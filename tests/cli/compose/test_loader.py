"""The loader over every version of the file (fig 1.0 / v1, v2, v3, compose-spec): each case a
file and the canonical services it must come to; then project names, profiles, extends and
env files."""

from __future__ import annotations

from typing import Any

import pytest

from cli.compose.errors import ComposeError
from cli.compose.loader import project_name, restarted_with, start_order
from tests.helpers.compose_files import PROJECT_DIR, MemorySources, load_texts

FORMATS: list[tuple[str, str, dict[str, dict[str, Any]]]] = [
    ("fig 1.0 / v1: services at the top, net, dockerfile, log_driver", """\
        web:
          build: ./web
          dockerfile: Dockerfile.dev
          links: [db]
          ports: ["8000:8000"]
          net: host
          log_driver: json-file
          log_opt: {max-size: 1m}
        db:
          image: postgres
          volumes: [./data:/var/lib/postgresql/data:ro]
        """, {
        "web": {"build": {"context": f"{PROJECT_DIR}/web", "dockerfile": "Dockerfile.dev"},
                "links": ["db"],
                "ports": [{"mode": "ingress", "target": 8000, "protocol": "tcp",
                           "published": "8000"}],
                "network_mode": "host",
                "logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
        "db": {"image": "postgres",
               "volumes": [{"type": "bind", "source": f"{PROJECT_DIR}/data",
                            "target": "/var/lib/postgresql/data", "read_only": True}]},
    }),
    ("v2.1: depends_on conditions, environment list, mem_limit", """\
        version: "2.1"
        services:
          api:
            image: api:1
            depends_on:
              cache: {condition: service_started}
            environment: [A=1, "B=two words", C]
            mem_limit: 64m
          cache:
            image: redis
            command: redis-server --appendonly yes
        """, {
        "api": {"image": "api:1",
                "depends_on": {"cache": {"condition": "service_started", "required": True}},
                "environment": {"A": "1", "B": "two words", "C": "from-shell"},
                "mem_limit": "64m"},
        "cache": {"image": "redis", "command": ["redis-server", "--appendonly", "yes"]},
    }),
    ("v3.8: deploy, long ports, labels list, external network", """\
        version: "3.8"
        services:
          web:
            image: nginx
            deploy:
              replicas: 3
              placement: {constraints: ["node.labels.zone == a"]}
            ports:
              - target: 80
                published: 8080
                protocol: tcp
            labels: [tier=front, empty]
            networks: [front]
        networks:
          front:
            external:
              name: shared-front
        """, {
        "web": {"image": "nginx",
                "deploy": {"replicas": 3,
                           "placement": {"constraints": ["node.labels.zone == a"]}},
                "ports": [{"mode": "ingress", "protocol": "tcp", "target": 80,
                           "published": "8080"}],
                "labels": {"tier": "front", "empty": ""},
                "networks": {"front": None}},
    }),
    ("compose-spec: name, port ranges, extra_hosts map, x- anchors and merge keys", """\
        name: shop
        x-base: &base
          restart: unless-stopped
          init: true
        services:
          web:
            <<: *base
            image: busybox
            ports: ["127.0.0.1:9000-9001:80-81/udp"]
            extra_hosts: {db: 10.0.0.2}
            healthcheck: {test: curl -f localhost}
        """, {
        "web": {"restart": "unless-stopped", "init": True, "image": "busybox",
                "ports": [{"mode": "ingress", "target": 80, "protocol": "udp",
                           "published": "9000", "host_ip": "127.0.0.1"},
                          {"mode": "ingress", "target": 81, "protocol": "udp",
                           "published": "9001", "host_ip": "127.0.0.1"}],
                "extra_hosts": ["db:10.0.0.2"],
                "healthcheck": {"test": ["CMD-SHELL", "curl -f localhost"]}},
    }),
]


@pytest.mark.parametrize(("case", "text", "expected"), FORMATS, ids=[c[0] for c in FORMATS])
def test_every_version_comes_to_the_same_model(case: str, text: str,
                                               expected: dict[str, dict[str, Any]]) -> None:
    project = load_texts({"compose.yaml": text}, env={"C": "from-shell"})
    assert {name: s.config for name, s in project.services.items()} == expected


def test_typed_view_of_a_service() -> None:
    project = load_texts({"compose.yaml": FORMATS[2][1]})
    web = project.services["web"]
    assert (web.replicas, web.image, web.labels, list(web.networks)) == \
        (3, "nginx", {"tier": "front", "empty": ""}, ["front"])
    assert project.networks == {"front": {"external": True, "name": "shared-front"}}


@pytest.mark.parametrize(("explicit", "from_file", "directory", "expected"), [
    ("", "", "/srv/My App.v2", "myappv2"),
    ("", "", "/srv/_under", "under"),
    ("", "shop", "/srv/x", "shop"),
    ("given", "shop", "/srv/x", "given"),
])
def test_project_names(explicit: str, from_file: str, directory: str, expected: str) -> None:
    assert project_name(explicit, from_file, directory) == expected


@pytest.mark.parametrize("bad", ["My-App", "-x", "a b"])
def test_an_explicit_project_name_must_already_be_valid(bad: str) -> None:
    with pytest.raises(ComposeError, match="is not valid"):
        project_name(bad, "", "/srv/x")


def test_project_name_from_the_environment_and_the_directory() -> None:
    files = {"compose.yaml": "services: {a: {image: x}}"}
    assert load_texts(files).name == "app"
    assert load_texts(files, env={"COMPOSE_PROJECT_NAME": "other"}).name == "other"
    assert load_texts(files, env={"COMPOSE_PROJECT_NAME": "other"},
                      project_name="dash-p").name == "dash-p"
    assert load_texts({**files, ".env": "COMPOSE_PROJECT_NAME=dotenv\n"}).name == "dotenv"


PROFILED = {"compose.yaml": """\
    services:
      web: {image: web}
      debug: {image: busybox, profiles: [debug]}
      seed: {image: busybox, profiles: [tools, debug], depends_on: [web]}
    """}


@pytest.mark.parametrize(("profiles", "env", "enabled"), [
    ((), {}, ["web"]),
    (("debug",), {}, ["debug", "seed", "web"]),
    ((), {"COMPOSE_PROFILES": "tools"}, ["seed", "web"]),
    (("tools",), {"COMPOSE_PROFILES": "debug"}, ["seed", "web"]),  # --profile wins
    (("*",), {}, ["debug", "seed", "web"]),
])
def test_profiles(profiles: tuple[str, ...], env: dict[str, str], enabled: list[str]) -> None:
    project = load_texts(PROFILED, env=env, profiles=profiles)
    assert sorted(project.services) == enabled


def test_a_service_named_on_the_command_line_is_enabled_whatever_its_profiles() -> None:
    project = load_texts(PROFILED, targets=["debug"])
    assert sorted(project.services) == ["debug", "web"]


def test_depending_on_a_disabled_service_names_its_profiles() -> None:
    files = {"compose.yaml": """\
        services:
          web: {image: web, depends_on: [db]}
          db: {image: db, profiles: [data]}
        """}
    with pytest.raises(ComposeError) as caught:
        load_texts(files)
    assert str(caught.value) == ("compose.yaml:2: services.web.depends_on.db: depends on db, "
                                 "whose profiles (data) are not active")


EXTENDS = {
    "compose.yaml": """\
        services:
          base:
            image: busybox
            environment: {LEVEL: base, KEEP: yes}
            command: sleep 1
          web:
            extends: base
            environment: {LEVEL: web}
            command: [httpd, -f]
          api:
            extends: {file: other/common.yml, service: app}
            ports: ["81:81"]
        """,
    "other/common.yml": """\
        services:
          root:
            image: alpine
            volumes: [./conf:/etc/app]
            ports: ["80:80"]
          app:
            extends: root
            user: nobody
        """,
}


def test_extends_in_the_same_file_and_another() -> None:
    project = load_texts(EXTENDS)
    web = project.services["web"].config
    assert web == {"image": "busybox", "environment": {"LEVEL": "web", "KEEP": "true"},
                   "command": ["httpd", "-f"]}
    api = project.services["api"].config
    # A relative path in the other file is relative to that file.
    assert api["volumes"] == [{"type": "bind", "source": f"{PROJECT_DIR}/other/conf",
                               "target": "/etc/app"}]
    assert [p["target"] for p in api["ports"]] == [80, 81]
    assert (api["image"], api["user"], "extends" in api) == ("alpine", "nobody", False)


def test_extends_cycles_and_missing_services_are_errors() -> None:
    cycle = {"compose.yaml": """\
        services:
          a: {extends: b, image: x}
          b: {extends: a}
        """}
    with pytest.raises(ComposeError, match=r"compose.yaml:\d+: services.a.extends: extends "
                                           r"itself: a -> b -> a"):
        load_texts(cycle)
    missing = {"compose.yaml": "services:\n  a: {extends: nope, image: x}\n"}
    with pytest.raises(ComposeError) as caught:
        load_texts(missing)
    assert str(caught.value) == ("compose.yaml:2: services.a.extends: extends a service "
                                 "'nope' that compose.yaml does not define")


def test_env_files_are_read_into_the_environment() -> None:
    files = {"compose.yaml": """\
        services:
          web:
            image: x
            env_file: [env/common.env]
            environment: {B: own}
        """, "env/common.env": "# comment\nexport A=1\nB=from-file\nC='lit $x'\n"}
    project = load_texts(files)
    assert project.services["web"].environment == {"A": "1", "B": "own", "C": "lit $x"}
    assert "env_file" not in project.services["web"].config


def test_the_start_order_puts_dependencies_first() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web: {image: x, depends_on: [api]}
          api: {image: x, depends_on: {db: {condition: service_started}}}
          db: {image: x}
          solo: {image: x}
        """})
    assert start_order(project, [], with_dependencies=True) == ["db", "api", "solo", "web"]
    assert start_order(project, ["web"], with_dependencies=True) == ["db", "api", "web"]
    assert start_order(project, ["web", "db"], with_dependencies=False) == ["db", "web"]


def test_a_validated_file_is_not_checked_again() -> None:
    sources = MemorySources({f"{PROJECT_DIR}/compose.yaml": "services: {a: {image: x}}"})
    from cli.compose.loader import LoadOptions, load_project

    options = LoadOptions(files=[f"{PROJECT_DIR}/compose.yaml"], environ={})
    load_project(options, sources)
    assert len(sources.valid) == 1
    sources.files[f"{PROJECT_DIR}/compose.yaml"] = "services: {a: {image: x, bogus: 1}}"
    with pytest.raises(ComposeError, match="unknown key"):
        load_project(options, sources)


def test_restarted_with_follows_restart_true_transitively_in_start_order() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          db: {image: busybox}
          api:
            image: busybox
            depends_on: {db: {condition: service_started, restart: true}}
          web:
            image: busybox
            depends_on: {api: {condition: service_started, restart: true}}
          cron:
            image: busybox
            depends_on: [db]
        """})
    assert restarted_with(project, ["db"]) == ["db", "api", "web"]
    assert restarted_with(project, ["api"]) == ["api", "web"]
    assert restarted_with(project, ["cron"]) == ["cron"]
