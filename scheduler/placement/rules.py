"""Parse placement rules: constraints on nodes and affinities to containers.

The language is Swarm classic's: ``key==value`` or ``key!=value``, where value is a literal, a
glob (``web-*``) or a ``/regex/`` (searched, so anchor it when you mean the whole value). A rule
is soft when it starts with ``~`` (``~node.labels.zone==a``) or its value does (Swarm classic's
``zone==~a``): soft rules are dropped when nothing satisfies them, hard rules never are.

Constraint keys are SwarmKit's (``node.id``, ``node.hostname``, ``node.platform.os``,
``node.platform.arch``, ``node.labels.<name>``, and ``node.ip`` with an address or a CIDR block,
matched against the address the node advertises); Swarm classic's ``node`` matches the node's id
or its name; ``engine.labels.<name>`` reads the labels the worker declared at start (``shoal
worker --label``), which ``node.labels`` also holds unless an operator changed them (``shoal node
label``); any other key names a node label. A constraint's literal or glob value matches
in any case, as SwarmKit compares them; a /regex/ as written (``/(?i).../`` for any case), as in
classic.

Affinity keys are ``container`` (name or id), ``image`` (the image is stored on the node, as in
classic: by id, tag or repository; an image pulled there for a container placed on it counts),
``container.image`` (a container of that image runs there) and ``label.<name>`` (a container
label); any other key names a container label, as in classic. Affinity values keep their case.

Every syntax error becomes an ``InvalidArgument`` that names the field (``constraints[2]``), so a
bad rule is refused at submission and never reaches the engine.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import operator
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum
from itertools import compress, repeat
from typing import Literal

from protocol.errors import InvalidArgument
from protocol.platforms import normalise_arch, normalise_os

_KEY_SYNTAX = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_GLOB_CHARS = frozenset("*?[")
MAX_RULE_LEN = 1024

NODE_KEYS: frozenset[str] = frozenset(
    {"node.id", "node.hostname", "node.ip", "node.platform.os", "node.platform.arch"}
)
_NODE_ALIASES: dict[str, str] = {"node.name": "node.hostname"}
# Swarm classic's ``node==X``: the node whose id or name is X (``!=``: neither is).
NODE_ID_OR_NAME = "node"
LABEL_PREFIX = "node.labels."
# What the worker declared at start (shoal worker --label), whatever an operator changed since.
ENGINE_LABEL_PREFIX = "engine.labels."
CONTAINER_LABEL_PREFIX = "label."
# Affinity keys: ``image`` is an image stored on the node (Swarm classic's meaning);
# ``container.image`` a container of that image running there.
IMAGE_KEY = "image"
CONTAINER_IMAGE_KEY = "container.image"
AFFINITY_KEYS = ("container", IMAGE_KEY, CONTAINER_IMAGE_KEY)
# An image id as a store lists it (``sha256:<hex>``): it has no repository to strip a tag from.
_IMAGE_ID = re.compile(r"^[a-z0-9]+:[0-9a-f]{32,}$")


class MatchKind(Enum):
    EXACT = "exact"
    GLOB = "glob"
    REGEX = "regex"
    NETWORK = "network"  # node.ip: an address or a CIDR block


@dataclass(frozen=True, slots=True)
class Matcher:
    """A value pattern: a literal, a glob or a regular expression."""

    kind: MatchKind
    pattern: str
    compiled: re.Pattern[str] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    # SwarmKit compares a constraint's value in any case (``zone==US-East`` holds for us-east):
    # the pattern of a literal is then stored lower case, a glob compiled to ignore case. A
    # /regex/ is the user's own (``/(?i).../`` asks for it), as in Swarm classic.
    ignore_case: bool = False

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.kind is MatchKind.EXACT:
            return (value.lower() if self.ignore_case else value) == self.pattern
        if self.kind is MatchKind.NETWORK:
            assert self.network is not None
            try:
                return ipaddress.ip_address(value) in self.network
            except ValueError:
                return False  # a node whose address is a name has no IP to match
        assert self.compiled is not None  # built by parse_value for GLOB and REGEX
        if self.kind is MatchKind.GLOB:
            return self.compiled.match(value) is not None
        return self.compiled.search(value) is not None

    def matching(self, values: Sequence[str | None]) -> list[int]:
        """The indices of the ``values`` that ``matches`` holds for, in one pass without a
        call per value (a node attribute over every node: 20,000 calls cost milliseconds)."""
        everyone = range(len(values))
        if self.kind is MatchKind.EXACT:
            pattern = self.pattern
            if self.ignore_case:
                return [i for i, v in enumerate(values) if v is not None and v.lower() == pattern]
            return list(compress(everyone, map(operator.eq, values, repeat(pattern))))
        if self.kind is MatchKind.NETWORK:
            return [i for i, v in enumerate(values) if self.matches(v)]
        assert self.compiled is not None
        test = self.compiled.match if self.kind is MatchKind.GLOB else self.compiled.search
        if None not in values:  # (ids, hostnames): the pattern over every value, in C
            return list(compress(everyone, map(test, values)))  # type: ignore[arg-type]
        return [i for i, v in enumerate(values) if v is not None and test(v) is not None]


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule. ``holds`` is True when a node (or its containers) satisfies it."""

    text: str  # as the user wrote it, for explanations
    field: str  # where it came from, e.g. "constraints[1]"
    key: str  # canonical key, e.g. "node.labels.zone", "container", "label.tier"
    negate: bool  # "!=": the value must NOT match
    soft: bool
    matcher: Matcher

    def holds(self, value: str | None) -> bool:
        """For a constraint: does the node attribute ``value`` (None = absent) satisfy it?"""
        return self.matcher.matches(value) != self.negate

    def holds_any(self, values: AbstractSet[str]) -> bool:
        """For an affinity: do the containers' ``values`` satisfy it (some match / none match)?"""
        return self.found_in(values) != self.negate

    def found_in(self, values: AbstractSet[str]) -> bool:
        """Does the pattern match one of ``values`` (whatever the operator)?"""
        m = self.matcher
        if m.kind is MatchKind.EXACT and not m.ignore_case:
            return m.pattern in values
        return any(m.matches(v) for v in values)


def _invalid(field: str, text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why} in {text!r}", details={"field": field, "rule": text})


def parse_value(
    raw: str, field: str, text: str, *, fold: Literal["", "os", "arch"] = "",
    ignore_case: bool = False,
) -> Matcher:
    """A literal, glob or /regex/ value; ``fold`` canonicalises platform literals;
    ``ignore_case`` matches literals and globs in any case."""
    if not raw:
        raise _invalid(field, text, "empty value")
    if len(raw) >= 2 and raw.startswith("/") and raw.endswith("/"):
        body = raw[1:-1]
        try:
            return Matcher(MatchKind.REGEX, body, re.compile(body))
        except re.error as exc:
            raise _invalid(field, text, f"bad regular expression ({exc})") from exc
    if raw.startswith("/"):
        raise _invalid(field, text, "regular expression without its closing '/'")
    if _GLOB_CHARS & set(raw):
        if fold or ignore_case:
            raw = raw.lower()
        flags = re.IGNORECASE if ignore_case else 0
        return Matcher(MatchKind.GLOB, raw, re.compile(fnmatch.translate(raw), flags),
                       ignore_case=ignore_case)
    if fold == "os":
        raw = normalise_os(raw)
    elif fold == "arch":
        raw = normalise_arch(raw)
    return Matcher(MatchKind.EXACT, raw.lower() if ignore_case else raw,
                   ignore_case=ignore_case)


def _split(text: str, field: str) -> tuple[str, bool, str, bool]:
    """(key, negate, raw value, soft) of ``[~]key(==|!=)[~]value``."""
    if len(text) > MAX_RULE_LEN:
        raise _invalid(field, text[:64] + "...", f"rule longer than {MAX_RULE_LEN} characters")
    body = text.strip()
    soft = body.startswith("~")
    if soft:
        body = body[1:]
    eq, ne = body.find("=="), body.find("!=")
    if eq < 0 and ne < 0:
        raise _invalid(field, text, "no operator (expected key==value or key!=value)")
    negate = ne >= 0 and (eq < 0 or ne < eq)
    at = ne if negate else eq
    key, raw = body[:at].strip(), body[at + 2 :].strip()
    if raw.startswith("~"):
        soft, raw = True, raw[1:].strip()
    if not key:
        raise _invalid(field, text, "empty key")
    if not _KEY_SYNTAX.match(key):
        raise _invalid(field, text, f"bad key {key!r} (letters, digits, '_', '.', '-', '/')")
    if key[0].isdigit():
        raise _invalid(field, text, f"bad key {key!r} (a key starts with a letter)")
    if "~" in raw:
        # Swarm classic refuses it too: a literal '~' would never match, and a soft rule that
        # never matches is dropped without a word.
        raise _invalid(field, text, "'~' inside a value (a rule is soft by a leading '~' only)")
    return key, negate, raw, soft


def _refuse_miscased(key: str, names: tuple[str, ...], prefixes: tuple[str, ...], field: str,
                     text: str) -> None:
    """Known keys and prefixes are lower case: ``Node.Hostname`` is refused, naming the key it
    resembles, never read as a label of that name (which could only fail to match, and make a
    ``!=`` rule always hold). A label's own name keeps its case."""
    lowered = key.lower()
    fixed = lowered if lowered in names and key != lowered else None
    for prefix in prefixes:
        if fixed is None and lowered.startswith(prefix) and not key.startswith(prefix):
            fixed = prefix + key[len(prefix):] if prefix.endswith("labels.") or \
                prefix == CONTAINER_LABEL_PREFIX else lowered
    if fixed is not None:
        raise _invalid(field, text, f"key {key!r} in another case (write {fixed!r})")


def parse_constraint(text: str, field: str) -> Rule:
    """A node constraint; unknown ``node.*`` keys are refused (they are typos, not labels)."""
    key, negate, raw, soft = _split(text, field)
    _refuse_miscased(key, ("node",), ("node.labels.", "engine.labels.", "node."), field, text)
    if key == "node.role":
        raise _invalid(field, text, "node.role has no meaning here: schedulers run no "
                                    "containers, every node is a worker")
    key = _NODE_ALIASES.get(key, key)
    if key == NODE_ID_OR_NAME:
        pass
    elif key.startswith((LABEL_PREFIX, ENGINE_LABEL_PREFIX)):
        if key in (LABEL_PREFIX, ENGINE_LABEL_PREFIX):
            raise _invalid(field, text, "empty label name")
    elif key.startswith("node."):
        if key not in NODE_KEYS:
            known = ", ".join(sorted(NODE_KEYS)) + ", node.labels.<name>"
            raise _invalid(field, text, f"unknown key {key!r} (known: {known})")
    else:
        key = LABEL_PREFIX + key  # Swarm classic: a bare key is a node label
    if key == "node.ip":
        return Rule(text, field, key, negate, soft, _parse_network(raw, field, text))
    fold: Literal["", "os", "arch"] = (
        "os" if key == "node.platform.os" else "arch" if key == "node.platform.arch" else ""
    )
    return Rule(text, field, key, negate, soft,
                parse_value(raw, field, text, fold=fold, ignore_case=True))


def _parse_network(raw: str, field: str, text: str) -> Matcher:
    """``node.ip``'s value: an address (``10.0.0.5``) or a CIDR block (``10.0.0.0/8``)."""
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise _invalid(field, text, "node.ip takes an address or a CIDR block "
                                    "(10.0.0.5, 10.0.0.0/8, fd00::/8)") from None
    return Matcher(MatchKind.NETWORK, str(network), network=network)


def parse_affinity(text: str, field: str) -> Rule:
    """An affinity: to containers by ``container`` name/id, ``container.image`` or container
    label; to the images a node stores by ``image``."""
    key, negate, raw, soft = _split(text, field)
    _refuse_miscased(key, AFFINITY_KEYS, (CONTAINER_LABEL_PREFIX,), field, text)
    if key.startswith(CONTAINER_LABEL_PREFIX):
        if len(key) == len(CONTAINER_LABEL_PREFIX):
            raise _invalid(field, text, "empty label name")
    elif key not in AFFINITY_KEYS:
        key = CONTAINER_LABEL_PREFIX + key  # Swarm classic: a bare key is a container label
    return Rule(text, field, key, negate, soft, parse_value(raw, field, text))


def image_names(ref: str) -> frozenset[str]:
    """The names an image reference answers to: as written and without its tag or digest."""
    names = {ref}
    base = ref.split("@", 1)[0]
    names.add(base)
    slash = base.rfind("/")
    colon = base.rfind(":")
    if colon > slash:
        names.add(base[:colon])
    return frozenset(names)


def stored_refs(images: Iterable[str]) -> frozenset[str]:
    """What ``image==`` matches on a node storing ``images`` (tags and ids, as a worker lists
    them): each as listed, and the repository of each tag (``redis`` for ``redis:7``)."""
    refs: set[str] = set()
    for image in images:
        if _IMAGE_ID.match(image):
            refs.add(image)
        else:
            refs.update(image_names(image))
    return frozenset(refs)


SPREAD_PREFIX = "spread="


def parse_preference(text: str, field: str) -> str:
    """A placement preference, SwarmKit's ``spread=node.labels.<name>`` or
    ``spread=engine.labels.<name>``: the label's key, as a constraint names it.

    Replicas of a job are spread evenly over the label's values (nodes without the label form
    one more group); it is the only preference SwarmKit knows, and the only one here. An
    engine label is one a worker declared at start (``shoal worker --label``), as in
    constraints, whatever an operator changed on the node's labels since."""
    if len(text) > MAX_RULE_LEN:
        raise _invalid(field, text[:64] + "...", f"longer than {MAX_RULE_LEN} characters")
    kind, sep, key = text.strip().partition("=")
    if not sep or kind.strip() != "spread":
        raise _invalid(field, text, "unknown preference (known: spread=node.labels.<name>, "
                                    "spread=engine.labels.<name>)")
    key = key.strip()
    if not _KEY_SYNTAX.match(key):
        raise _invalid(field, text, f"bad key {key!r} (letters, digits, '_', '.', '-', '/')")
    _refuse_miscased(key, (), ("node.labels.", "engine.labels."), field, text)
    if not key.startswith((LABEL_PREFIX, ENGINE_LABEL_PREFIX)) or \
            key in (LABEL_PREFIX, ENGINE_LABEL_PREFIX):
        raise _invalid(field, text, "a preference spreads over a node label: "
                                    "spread=node.labels.<name> or spread=engine.labels.<name>")
    return key
