"""Key layout, endpoint parsing and the record codec: pure."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from protocol.specs import ContainerSpec
from scheduler.store import CONTAINERS, NODES, ContainerRecord, Layout, parse_endpoints
from scheduler.store.endpoints import Endpoint
from scheduler.store.keys import prefix_end
from scheduler.store.records import BadRecord


def test_layout_round_trip() -> None:
    layout = Layout()
    key = layout.key("containers", "web-1")
    assert key == b"/shoal/v1/containers/web-1"
    assert layout.split(key) == ("containers", "web-1")
    assert layout.split(b"/shoal/v1/leader") is None
    assert layout.split(b"/other/containers/x") is None
    assert layout.split(b"/shoal/v1/containers/a/b") is None


@pytest.mark.parametrize("bad", ["", "a/b", "x\0", "n" * 256])
def test_bad_ids_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Layout().key("containers", bad)


def test_prefix_end() -> None:
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("http://a:2379,http://b:2380", [Endpoint("a", 2379), Endpoint("b", 2380)]),
        ("127.0.0.1:1234", [Endpoint("127.0.0.1", 1234)]),
        ("http://h", [Endpoint("h", 2379)]),
        (" http://a:1 , http://a:1 ,", [Endpoint("a", 1)]),
        ("http://[::1]:2379", [Endpoint("::1", 2379)]),
        ("unix:///run/shoal/etcd.client:0,http://a:1",
         [Endpoint(socket="/run/shoal/etcd.client:0"), Endpoint("a", 1)]),
        ("unix:/run/etcd.sock", [Endpoint(socket="/run/etcd.sock")]),
    ],
)
def test_parse_endpoints(spec: str, expected: list[Endpoint]) -> None:
    assert parse_endpoints(spec) == expected


def test_ipv6_target() -> None:
    assert Endpoint("::1", 2379).target == "[::1]:2379"


def test_unix_socket_target_and_url_round_trip() -> None:
    endpoint = Endpoint(socket="/run/shoal/etcd.client:0")
    assert endpoint.target == "unix:/run/shoal/etcd.client:0"  # gRPC's form
    assert parse_endpoints(endpoint.url) == [endpoint]


@pytest.mark.parametrize("spec", ["", ",", "https://a:2379", "http://a:99999", "http://a/x",
                                  "http://:2379", "unix://relative:0", "unix:///"])
def test_parse_endpoints_refuses(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_endpoints(spec)


def test_codec_round_trip_and_bad_bytes() -> None:
    rec = ContainerRecord(spec=ContainerSpec(image="redis", command=["a"]), generation=3)
    assert CONTAINERS.decode(CONTAINERS.encode(rec)) == rec
    with pytest.raises(BadRecord):
        CONTAINERS.decode(b"\xc1garbage")
    with pytest.raises(InvalidArgument):
        NODES.encode(rec)  # type: ignore[arg-type]
