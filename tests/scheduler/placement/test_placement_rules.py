"""Parsing of constraints and affinities: accepted forms, canonical keys, typed errors."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from scheduler.placement.rules import MatchKind, image_names, parse_affinity, parse_constraint


@pytest.mark.parametrize(
    ("text", "key", "negate", "soft", "kind", "pattern"),
    [
        ("node.labels.zone==a", "node.labels.zone", False, False, MatchKind.EXACT, "a"),
        ("node.labels.zone!=a", "node.labels.zone", True, False, MatchKind.EXACT, "a"),
        ("~node.labels.zone==a", "node.labels.zone", False, True, MatchKind.EXACT, "a"),
        ("zone==~a", "node.labels.zone", False, True, MatchKind.EXACT, "a"),
        ("node.hostname==web-*", "node.hostname", False, False, MatchKind.GLOB, "web-*"),
        ("node==db?", "node", False, False, MatchKind.GLOB, "db?"),  # classic: id or name
        ("node.id==/^n[0-9]+$/", "node.id", False, False, MatchKind.REGEX, "^n[0-9]+$"),
        ("node.platform.arch==x86_64", "node.platform.arch", False, False, MatchKind.EXACT,
         "amd64"),
        ("node.platform.arch==aarch64", "node.platform.arch", False, False, MatchKind.EXACT,
         "arm64"),
        ("node.platform.os==Windows", "node.platform.os", False, False, MatchKind.EXACT,
         "windows"),
        (" com.example.tier == db ", "node.labels.com.example.tier", False, False,
         MatchKind.EXACT, "db"),
    ],
)
def test_constraint_forms(text: str, key: str, negate: bool, soft: bool, kind: MatchKind,
                          pattern: str) -> None:
    rule = parse_constraint(text, "constraints[0]")
    assert (rule.key, rule.negate, rule.soft) == (key, negate, soft)
    assert (rule.matcher.kind, rule.matcher.pattern) == (kind, pattern)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("zone=a", "no operator"),
        ("==a", "empty key"),
        ("zone==", "empty value"),
        ("node.lables.zone==a", "unknown key"),
        ("node.labels.==a", "empty label name"),
        ("zo ne==a", "bad key"),
        ("zone==/[a/", "bad regular expression"),
        ("zone==/abc", "closing"),
        ("x" * 2000 + "==a", "longer than"),
        # SwarmKit refuses a key starting with a digit; classic a '~' inside a value (as a
        # literal it never matches, and the soft rule it makes would be dropped silently).
        ("1node==a2", "starts with a letter"),
        ("region==~us~", "'~' inside a value"),
        ("region==u~s", "'~' inside a value"),
        # A known key in another case is refused with the key it resembles, never read as a
        # label named so (which never matches, and makes a '!=' rule always hold).
        ("Node.Hostname==a", "write 'node.hostname'"),
        ("NODE.LABELS.zone==a", "write 'node.labels.zone'"),
        ("Node==db", "write 'node'"),
        ("Engine.Labels.storage==ssd", "write 'engine.labels.storage'"),
        ("node.role==manager", "node.role has no meaning"),
        ("node.ip==10.0.0.*", "an address or a CIDR block"),
        ("node.ip==10.0.0.0/33", "an address or a CIDR block"),
    ],
)
def test_constraint_errors_name_the_field(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why) as info:
        parse_constraint(text, "constraints[3]")
    assert info.value.details["field"] == "constraints[3]"
    assert str(info.value).startswith("constraints[3]")


@pytest.mark.parametrize(
    ("text", "key", "negate"),
    [
        ("container==web", "container", False),
        ("container!=web*", "container", True),
        ("image==redis", "image", False),
        ("label.tier==db", "label.tier", False),
        ("com.example.type==frontend", "label.com.example.type", False),
    ],
)
def test_affinity_forms(text: str, key: str, negate: bool) -> None:
    rule = parse_affinity(text, "affinities[0]")
    assert (rule.key, rule.negate) == (key, negate)


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("zone==a", "a", True),
        ("zone==a", "b", False),
        ("zone==a", None, False),
        ("zone!=a", None, True),  # an absent label is "not a"
        ("zone!=a", "a", False),
        ("zone==a*", "abc", True),
        ("zone==a*", "bac", False),
        ("zone==/b/", "abc", True),  # regexes search; anchor them for whole values
        ("zone==/^b/", "abc", False),
        ("zone==A", "a", True),  # values in any case, as SwarmKit compares them
    ],
)
def test_holds(text: str, value: str | None, holds: bool) -> None:
    assert parse_constraint(text, "c").holds(value) is holds


def test_image_names_drop_tag_and_digest() -> None:
    assert image_names("redis:7") == {"redis:7", "redis"}
    assert image_names("reg:5000/app") == {"reg:5000/app"}
    assert image_names("reg:5000/app:1@sha256:ab") == {
        "reg:5000/app:1@sha256:ab", "reg:5000/app:1", "reg:5000/app"}


@pytest.mark.parametrize(("text", "why"), [
    ("Container==web", "write 'container'"),
    ("IMAGE==redis", "write 'image'"),
    ("Label.tier==db", "write 'label.tier'"),
    ("tier==~db~", "'~' inside a value"),
])
def test_affinity_errors_name_the_field(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        parse_affinity(text, "affinities[0]")


@pytest.mark.parametrize(("text", "key"), [
    ("node.labels.Zone==a", "node.labels.Zone"),  # a label's own name keeps its case
    ("Zone==a", "node.labels.Zone"),  # a bare key is a label, whatever its case
    ("Nodes==a", "node.labels.Nodes"),
])
def test_label_names_keep_their_case(text: str, key: str) -> None:
    assert parse_constraint(text, "constraints[0]").key == key
