"""``network_mode: service:X`` and ``container:X``: the service joins the namespace of X's
first container (compose's choice when X has several), starts after X, is placed beside it,
and is recreated when X's first container is made anew; what would set its own network is
refused with the file, the path and the reason."""

from __future__ import annotations

import pytest

from cli.compose.converge import Action
from cli.compose.errors import ComposeError
from cli.compose.lifecycle import _peer_made_anew
from cli.compose.loader import start_order
from cli.compose.translate import check_project, network_specs, service_specs
from tests.helpers.compose_files import load_texts

APP = """\
    name: shop
    services:
      side:
        image: busybox
        network_mode: service:web
        deploy: {replicas: 2}
      web:
        image: busybox
        deploy: {replicas: 3}
      outside:
        image: busybox
        network_mode: container:legacy
    """


def test_service_mode_joins_the_first_container_of_the_service() -> None:
    project = load_texts({"compose.yaml": APP})
    check_project(project, ["web", "side", "outside"])
    specs = service_specs(project, project.services["side"], cluster=True)
    assert [s.network for s in specs] == ["container:shop-web-1"] * 2
    assert all(s.network_aliases == [] and s.network_spec is None for s in specs)
    [outside] = service_specs(project, project.services["outside"])
    assert outside.network == "container:legacy"
    assert start_order(project, ["side"], with_dependencies=True) == ["web", "side"]
    assert list(network_specs(project, ["side", "outside"])) == []  # no network of their own


def test_a_named_peer_is_joined_by_its_container_name() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          side: {image: busybox, network_mode: "service:web"}
          web: {image: busybox, container_name: front}
        """})
    [side] = service_specs(project, project.services["side"])
    assert side.network == "container:front"


@pytest.mark.parametrize(("key", "value", "why"), [
    ("hostname", "h", "--hostname conflicts"),
    ("ports", '["8080:80"]', "--publish conflicts"),
    ("dns", "9.9.9.9", "--dns conflicts"),
    ("extra_hosts", '["db:10.0.0.2"]', "--add-host conflicts"),
    ("expose", '["80"]', "--expose conflicts"),
])
def test_what_would_set_its_own_network_is_refused(key: str, value: str, why: str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          side:
            image: busybox
            network_mode: service:web
            {key}: {value}
          web: {{image: busybox}}
        """})
    with pytest.raises(ComposeError) as info:
        check_project(project, ["web", "side"])
    text = str(info.value)
    assert "services.side" in text and why in text and "container:" in text, text


def test_the_dependant_is_recreated_when_its_peers_first_container_is_made_anew() -> None:
    project = load_texts({"compose.yaml": APP})
    kept = {"web": [Action("keep", "shop-web-1"), Action("recreate", "shop-web-2")]}
    assert not _peer_made_anew(project, "side", kept)
    for kind in ("recreate", "create"):
        assert _peer_made_anew(project, "side", {"web": [Action(kind, "shop-web-1")]})
    assert not _peer_made_anew(project, "web", kept)  # no peer
    assert not _peer_made_anew(project, "outside", kept)  # a container outside the project
