"""Reference parsing and normalisation, and chain ids: pure functions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.images.digest import chain_ids, digest_bytes
from worker.images.errors import InvalidImage, InvalidReference
from worker.images.reference import Reference, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", Reference("busybox", "latest")),
    ("busybox:1.36", Reference("busybox", "1.36")),
    ("docker.io/library/busybox", Reference("busybox", "latest")),
    ("index.docker.io/library/busybox:x", Reference("busybox", "x")),
    ("library/busybox", Reference("busybox", "latest")),
    ("docker.io/team/app:v1", Reference("team/app", "v1")),
    ("localhost:5000/app", Reference("localhost:5000/app", "latest")),
    ("localhost/app:1", Reference("localhost/app", "1")),
    ("example.com/a/b/c:T_1.x-y", Reference("example.com/a/b/c", "T_1.x-y")),
    (f"busybox@{D}", Reference("busybox", None, D)),
    (f"busybox:1@{D}", Reference("busybox", "1", D)),
    ("my-app__x.y", Reference("my-app__x.y", "latest")),
])
def test_valid_references(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    ("BusyBox", "lowercase"),
    ("busybox:", "tag"),
    ("busybox:-x", "tag"),
    ("busybox:" + "a" * 129, "tag"),
    ("busybox@sha256:abc", "digest"),
    ("busybox@md5:" + "0" * 32, "digest"),
    ("bad_-name", "component"),
    ("-x", "component"),
    ("a//b", "component"),
    ("a/b/", "component"),
    ("bad host!/x", "host"),
    (":latest", "empty"),
    ("a" * 300, "longer"),
])
def test_bad_references_say_why(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert why in info.value.message
    assert info.value.code == "request.invalid_argument.reference"


def test_tagged_form_and_str() -> None:
    ref = parse_reference("docker.io/library/alpine:3")
    assert ref.tagged == "alpine:3"
    assert str(parse_reference(f"alpine@{D}")) == f"alpine@{D}"
    with pytest.raises(InvalidReference):
        _ = parse_reference(f"alpine@{D}").tagged


# No dots: a first component with one would be a registry host, a different case.
component = st.from_regex(r"[a-z0-9]{1,5}([_-][a-z0-9]{1,5}){0,2}", fullmatch=True)
names = st.lists(component, min_size=1, max_size=3).map("/".join)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@given(names, tags)
def test_parse_is_stable(name: str, tag: str) -> None:
    ref = parse_reference(f"{name}:{tag}")
    assert ref.tag == tag
    assert parse_reference(str(ref)) == ref


@given(st.text(max_size=40))
def test_anything_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


def test_chain_ids_follow_the_oci_definition() -> None:
    a, b, c = (digest_bytes(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []
    with pytest.raises(InvalidImage):
        chain_ids(["sha256:nothex"])
