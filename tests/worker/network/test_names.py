"""The name table and the resolver's decisions, without sockets: names, aliases and job names
only on shared networks, replicas rotated, PTR, forwards, and bytes that are no query."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.network.dns_answers import Forward, decide, error_reply
from worker.network.names import EVERY_NETWORK, NameEntry, NameTable


def table() -> NameTable:
    names = NameTable()
    names.update_local([
        NameEntry("front", "a" * 64, "10.9.0.2", name="web", aliases=("www",)),
        NameEntry("front", "b" * 64, "10.9.0.3", name="api.1", job="api"),
        NameEntry("front", "c" * 64, "10.9.0.4", name="api.2", job="api"),
        NameEntry("back", "d" * 64, "10.8.0.2", name="db"),
    ])
    return names


def ask(names: NameTable, name: str, kind: str = "A",
        networks: frozenset[str] = frozenset({"front"})) -> dns.message.Message | Forward:
    query = dns.message.make_query(name, kind)
    decision = decide(query.to_wire(), names, networks)
    assert decision is not None
    return decision if isinstance(decision, Forward) else dns.message.from_wire(decision)


def addresses(reply: dns.message.Message | Forward) -> list[str]:
    assert isinstance(reply, dns.message.Message)
    return [r.address for rrset in reply.answer for r in rrset]


@pytest.mark.parametrize(("name", "networks", "expected"), [
    ("web", {"front"}, ["10.9.0.2"]),
    ("WEB.", {"front"}, ["10.9.0.2"]),
    ("www", {"front"}, ["10.9.0.2"]),
    ("a" * 12, {"front"}, ["10.9.0.2"]),
    ("api.1", {"front"}, ["10.9.0.3"]),
    ("db", {"back", "front"}, ["10.8.0.2"]),
])
def test_names_aliases_and_ids_answer_on_shared_networks(
        name: str, networks: set[str], expected: list[str]) -> None:
    assert addresses(ask(table(), name, networks=frozenset(networks))) == expected


def test_a_name_on_another_network_is_forwarded() -> None:
    assert isinstance(ask(table(), "db"), Forward)
    assert isinstance(ask(table(), "example.org"), Forward)
    assert isinstance(ask(table(), "web", networks=frozenset()), Forward)


def test_a_job_name_answers_every_replica_rotated() -> None:
    names = table()
    firsts = [addresses(ask(names, "api"))[0] for _ in range(4)]
    assert sorted(addresses(ask(names, "api"))) == ["10.9.0.3", "10.9.0.4"]
    assert firsts == ["10.9.0.3", "10.9.0.4", "10.9.0.3", "10.9.0.4"]


def test_aaaa_of_a_known_name_is_empty_and_no_error() -> None:
    reply = ask(table(), "web", "AAAA")
    assert isinstance(reply, dns.message.Message)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer == []
    assert reply.flags & dns.flags.AA


def test_pointer_names_a_container_on_a_shared_network() -> None:
    reply = ask(table(), "2.0.9.10.in-addr.arpa", "PTR")
    assert isinstance(reply, dns.message.Message)
    assert [r.target.to_text() for rrset in reply.answer for r in rrset] == ["web."]
    assert isinstance(ask(table(), "2.0.8.10.in-addr.arpa", "PTR"), Forward)


def test_local_and_remote_updates_replace_their_own_side() -> None:
    names = table()
    names.update_remote([NameEntry("front", "e" * 64, "10.9.1.7", name="api.3", job="api")])
    assert sorted(addresses(ask(names, "api"))) == ["10.9.0.3", "10.9.0.4", "10.9.1.7"]
    names.update_local([NameEntry("front", "a" * 64, "10.9.0.2", name="web")])
    assert addresses(ask(names, "api")) == ["10.9.1.7"]
    assert names.networks_of("a" * 64) == {"front"}
    # A remote endpoint never makes a network the asker's own.
    assert names.networks_of("e" * 64) == frozenset()
    names.update_remote([])
    assert isinstance(ask(names, "api"), Forward)


def test_many_replicas_fit_a_udp_reply() -> None:
    names = NameTable()
    names.update_local([NameEntry("n", f"{i:064x}", f"10.0.{i // 250}.{i % 250 + 1}",
                                  name=f"s.{i}", job="s") for i in range(100)])
    decision = decide(dns.message.make_query("s", "A").to_wire(), names, frozenset({"n"}))
    assert isinstance(decision, bytes) and len(decision) <= 512


@pytest.mark.parametrize(("data", "expected"), [
    (b"", None),
    (b"\x12\x34", None),
    (b"\x12\x34\x81\x00" + b"\x00" * 8, None),  # a response: never answered
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07broken", dns.rcode.FORMERR),
    (b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01"
     b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),  # two questions
    (b"\x12\x34\x29\x00" + b"\x00" * 8, dns.rcode.NOTIMP),  # an UPDATE
])
def test_bytes_that_are_no_query(data: bytes, expected: int | None) -> None:
    decision = decide(data, table(), frozenset({"front"}))
    if expected is None:
        assert decision is None
        return
    assert isinstance(decision, bytes)
    ident, flags = struct.unpack_from("!HH", decision)
    assert ident == 0x1234 and flags & 0x8000 and flags & 0xF == expected


def test_a_servfail_keeps_the_query_id() -> None:
    query = dns.message.make_query("example.org", "A")
    reply = error_reply(query.to_wire(), dns.rcode.SERVFAIL)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.id == query.id and parsed.rcode() == dns.rcode.SERVFAIL


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=600))
def test_any_bytes_are_decided_without_raising(data: bytes) -> None:
    decision = decide(data, table(), frozenset({"front"}))
    assert decision is None or isinstance(decision, (bytes, Forward))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(0, 600), st.binary(min_size=1, max_size=4))
def test_a_query_damaged_anywhere_is_decided_without_raising(at: int, junk: bytes) -> None:
    wire = bytearray(dns.message.make_query("api", "A", use_edns=0).to_wire())
    at %= len(wire)
    wire[at:at + len(junk)] = junk
    decide(bytes(wire), table(), frozenset({"front"}))


def test_other_types_of_a_known_name_are_empty() -> None:
    reply = ask(table(), "web", "MX")
    assert isinstance(reply, dns.message.Message) and reply.answer == []
    assert reply.question[0].rdtype == dns.rdatatype.MX


def test_a_container_on_its_nodes_own_network_answers_on_every_network() -> None:
    names = table()
    names.update_remote([NameEntry(EVERY_NETWORK, "w" * 64, "192.0.2.9", name="win.1",
                                   job="win")])
    assert addresses(ask(names, "win")) == ["192.0.2.9"]
    assert addresses(ask(names, "win.1", networks=frozenset({"back"}))) == ["192.0.2.9"]
    assert names.reverse("192.0.2.9", {"back"}) == "win.1"
