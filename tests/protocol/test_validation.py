"""``protocol.validation``: each bad field refused with its name, each good one let through."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from protocol.errors import InvalidArgument, InvalidSpec, error_from_info
from protocol.specs import (
    AppSpec,
    ContainerSpec,
    Mount,
    NetworkAttachment,
    NetworkSpec,
    PortMapping,
    Resources,
    Ulimit,
)
from protocol.validation import MIN_MEMORY, check_spec, check_specs, millicpus

MiB = 1024 * 1024


def spec(**fields: Any) -> ContainerSpec:
    return ContainerSpec(image="busybox", **fields)


# (what, spec, the field named, a word of the reason)
REFUSED: list[tuple[str, ContainerSpec, str, str]] = [
    ("env without =", spec(env=["A=1", "B=2", "JUSTKEY"]), "env[2]", "KEY=VALUE"),
    ("env with empty key", spec(env=["=value"]), "env[0]", "empty variable name"),
    ("env with NUL in the value", spec(env=["A=x\x00y"]), "env[0]", "NUL"),
    ("env with NUL in the key", spec(env=["A\x00B=1"]), "env[0]", "NUL"),
    ("NUL in the command", spec(command=["echo", "a\x00b"]), "command[1]", "NUL"),
    ("NUL in the entrypoint", spec(entrypoint=["/bin/s\x00h"]), "entrypoint[0]", "NUL"),
    ("relative workdir", spec(workdir="tmp"), "workdir", "absolute"),
    ("NUL in the workdir", spec(workdir="/tm\x00p"), "workdir", "NUL"),
    ("relative mount target", spec(mounts=[Mount(source="/a", target="b")]),
     "mounts[0].target", "absolute"),
    ("relative bind source",
     spec(mounts=[Mount(source="/a", target="/a"), Mount(source="a", target="/b")]),
     "mounts[1].source", "absolute"),
    ("mount over the root", spec(mounts=[Mount(source="/a", target="/")]),
     "mounts[0].target", "root"),
    ("NUL in a tmpfs target", spec(mounts=[Mount(type="tmpfs", target="/a\x00")]),
     "mounts[0].target", "NUL"),
    ("uid past the range", spec(user="4294967295"), "user", "out of range"),
    ("gid past the range", spec(user="0:4294967296"), "user", "out of range"),
    ("empty group", spec(user="app:"), "user", "USER[:GROUP]"),
    ("three parts", spec(user="a:b:c"), "user", "USER[:GROUP]"),
    ("NUL in the user", spec(user="ro\x00ot"), "user", "NUL"),
    ("hostname with a space", spec(hostname="my host"), "hostname", "not a host name"),
    ("hostname ending with -", spec(hostname="web-"), "hostname", "not a host name"),
    ("hostname with an empty label", spec(hostname="a..b"), "hostname", "not a host name"),
    ("hostname of 65 bytes", spec(hostname="a" * 65), "hostname", "64 bytes"),
    ("NUL in the hostname", spec(hostname="a\x00b"), "hostname", "not a host name"),
    ("cpus 0.001", spec(resources=Resources(millicpus=1)), "resources.millicpus",
     "below the minimum of 0.01"),
    ("memory 1 MiB", spec(resources=Resources(memory=MiB)), "resources.memory", "6 MiB"),
    ("memory one byte short", spec(resources=Resources(memory=MIN_MEMORY - 1)),
     "resources.memory", "6 MiB"),
    ("swap below memory", spec(resources=Resources(memory=64 * MiB, memory_swap=32 * MiB)),
     "resources.memory_swap", "less than memory"),
    ("swap without memory", spec(resources=Resources(memory_swap=64 * MiB)),
     "resources.memory_swap", "needs a memory limit"),
    ("ulimit soft above hard", spec(ulimits=[Ulimit(name="nofile", soft=10, hard=5)]),
     "ulimits[0]", "nofile: the soft limit (10) is above the hard one (5)"),
    ("ulimit soft unlimited, hard not", spec(ulimits=[Ulimit(name="core", soft=-1, hard=5)]),
     "ulimits[0]", "above the hard one"),
    ("ulimit given twice", spec(ulimits=[Ulimit(name="nproc", soft=1, hard=1),
                                         Ulimit(name="nproc", soft=2, hard=2)]),
     "ulimits[1]", "nproc is given twice"),
]

ACCEPTED: list[tuple[str, ContainerSpec]] = [
    ("nothing set", spec()),
    ("env with = in the value and an empty value", spec(env=["A=b=c", "EMPTY="])),
    ("absolute workdir", spec(workdir="/srv/app")),
    ("named user with group", spec(user="app:staff")),
    ("largest ids", spec(user="4294967294:4294967294")),
    ("root by number", spec(user="0")),
    ("dotted hostname", spec(hostname="web-1.example.org")),
    ("64-byte hostname", spec(hostname="a" * 63 + "b")),
    ("bind and tmpfs", spec(mounts=[Mount(source="/data", target="/data", read_only=True),
                                    Mount(type="tmpfs", target="/run")])),
    ("volume by name", spec(mounts=[Mount(type="volume", source="cache", target="/cache")])),
    ("no limits (zeros)", spec(resources=Resources(millicpus=0, memory=0))),
    ("smallest limits", spec(resources=Resources(millicpus=10, memory=MIN_MEMORY))),
    ("unlimited swap", spec(resources=Resources(memory=64 * MiB, memory_swap=-1))),
    ("swap equal to memory", spec(resources=Resources(memory=64 * MiB, memory_swap=64 * MiB))),
    ("ulimits", spec(ulimits=[Ulimit(name="nofile", soft=10, hard=20),
                              Ulimit(name="core", soft=0, hard=-1),
                              Ulimit(name="stack", soft=-1, hard=-1)])),
]


@pytest.mark.parametrize(("what", "bad", "field", "reason"), REFUSED,
                         ids=[case[0] for case in REFUSED])
def test_a_bad_field_is_refused_by_name(what: str, bad: ContainerSpec, field: str,
                                        reason: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        check_spec(bad)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"invalid {field}: ")


@pytest.mark.parametrize(("what", "good"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_a_good_spec_passes_unchanged(what: str, good: ContainerSpec) -> None:
    assert check_spec(good) is good


def test_the_refusal_crosses_the_wire_as_itself() -> None:
    with pytest.raises(InvalidSpec) as caught:
        check_spec(spec(env=["=x"]))
    info = msgspec.msgpack.decode(msgspec.msgpack.encode(caught.value.to_info()),
                                  type=type(caught.value.to_info()))
    again = error_from_info(info)
    assert isinstance(again, InvalidSpec) and isinstance(again, InvalidArgument)
    assert (again.field, str(again)) == ("env[0]", str(caught.value))


@pytest.mark.parametrize(("cpus", "expected"), [(0.0, 0), (0.01, 10), (0.5, 500), (2.0, 2000),
                                                (0.0151, 15)])
def test_cpus_become_millicpus(cpus: float, expected: int) -> None:
    assert millicpus(cpus) == expected


@pytest.mark.parametrize("cpus", [0.0001, 0.009, -1.0])
def test_cpus_that_would_round_to_no_limit_are_refused(cpus: float) -> None:
    with pytest.raises(InvalidSpec) as caught:
        millicpus(cpus)
    assert caught.value.field == "resources.millicpus"


def test_an_app_names_the_container_at_fault() -> None:
    app = AppSpec(name="app", containers=[spec(), spec(workdir="rel")])
    with pytest.raises(InvalidSpec) as caught:
        check_specs(app.containers)
    assert caught.value.field == "containers[1].workdir"
    with pytest.raises(InvalidSpec) as caught:
        check_specs([spec(workdir="rel")])
    assert caught.value.field == "workdir"


@pytest.mark.parametrize(("network", "field", "why"), [
    ("none", "ports", "--network none has loopback only: no port can be published"),
    ("host", "ports", "--network host has no network of its own: no port can be published"),
])
def test_a_published_port_needs_a_bridge_network(network: str, field: str, why: str) -> None:
    with pytest.raises(InvalidSpec, match=why) as info:
        check_spec(ContainerSpec(image="x", network=network,
                                 ports=[PortMapping(container_port=80)]))
    assert info.value.field == field
    check_spec(ContainerSpec(image="x", network="bridge", ports=[PortMapping(container_port=80)]))


@pytest.mark.parametrize(("fields", "field"), [
    ({"network": "bridge", "ip": "10.0.0.300"}, "ip"),
    ({"network": "none", "ip": "10.0.0.3"}, "ip"),
    ({"network": "bridge", "dns": ["resolver"]}, "dns[0]"),
    ({"add_hosts": ["db"]}, "add_hosts[0]"),
    ({"add_hosts": ["db:nowhere"]}, "add_hosts[0]"),
    ({"dns_search": ["a b"]}, "dns_search[0]"),
])
def test_network_fields_are_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        check_spec(ContainerSpec(image="x", **fields))
    assert info.value.field == field


# Docker refuses each of these with --network container:X (its runconfig's conflicts); shoal
# names the flag and what the container has from X instead.
@pytest.mark.parametrize(("fields", "field", "why"), [
    ({"hostname": "h"}, "hostname", "--hostname conflicts with it (it has the hostname of web)"),
    ({"ports": [PortMapping(container_port=80)]}, "ports", "--publish conflicts with it "
     "(publish the port on web)"),
    ({"publish_all": True}, "publish_all", "--publish-all conflicts"),
    ({"expose": ["80"]}, "expose", "--expose conflicts"),
    ({"dns": ["192.0.2.1"]}, "dns", "--dns conflicts with it (it has the /etc/resolv.conf of "
     "web)"),
    ({"dns_search": ["example.test"]}, "dns_search", "--dns-search conflicts"),
    ({"add_hosts": ["db:10.0.0.2"]}, "add_hosts", "--add-host conflicts with it (it has the "
     "/etc/hosts of web)"),
    ({"ip": "10.0.0.9"}, "ip", "--ip conflicts"),
    ({"network_aliases": ["api"]}, "network_aliases", "--network-alias conflicts"),
    ({"links": ["db:db"]}, "links", "--link conflicts"),
    ({"connected": [NetworkAttachment(name="back")]}, "connected",
     "cannot be connected to other networks"),
    ({"network_spec": NetworkSpec(name="container:web")}, "network_spec", "no network spec"),
])
def test_a_joined_network_refuses_what_would_set_its_own(fields: dict[str, Any], field: str,
                                                         why: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(why)) as info:
        check_spec(ContainerSpec(image="x", network="container:web", **fields))
    assert info.value.field == field
    assert "a container on --network container:web shares its network" in info.value.reason


@pytest.mark.parametrize("network", ["container:", "container:a b", "container:-x"])
def test_a_joined_network_names_a_container(network: str) -> None:
    with pytest.raises(InvalidSpec, match="expected container:NAME") as info:
        check_spec(ContainerSpec(image="x", network=network))
    assert info.value.field == "network"


def test_a_joined_network_alone_passes() -> None:
    good = ContainerSpec(image="x", network="container:web", name="side")
    assert check_spec(good) is good
