"""The registry client's pure parts: where a reference lives, credentials keys, challenges and
the platform chosen from a multi-platform index."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from worker.images.errors import ImageNotFound, InvalidReference
from worker.images.oci import Descriptor, Index, Platform
from worker.images.registry.auth import Credentials, parse_challenge, scope_for
from worker.images.registry.errors import RegistryUnauthorized, error_text, registry_error
from worker.images.registry.names import registry_key, remote_name
from worker.images.registry.platform_choice import (
    WantedPlatform,
    choose_manifest,
    parse_platform,
)


@pytest.mark.parametrize(("text", "domain", "repository", "tag", "digest", "familiar"), [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox"),
    ("team/app", "docker.io", "team/app", "latest", None, "team/app"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
    ("index.docker.io/team/app:2", "docker.io", "team/app", "2", None, "team/app"),
    ("localhost:5000/app", "localhost:5000", "app", "latest", None, "localhost:5000/app"),
    ("localhost/a/b:x", "localhost", "a/b", "x", None, "localhost/a/b"),
    ("127.0.0.1:41000/t/busybox:1", "127.0.0.1:41000", "t/busybox", "1", None,
     "127.0.0.1:41000/t/busybox"),
    ("quay.io/org/img@sha256:" + "a" * 64, "quay.io", "org/img", None, "sha256:" + "a" * 64,
     "quay.io/org/img"),
])
def test_remote_names_follow_docker(text: str, domain: str, repository: str, tag: str | None,
                                    digest: str | None, familiar: str) -> None:
    name = remote_name(text)
    assert (name.domain, name.repository, name.tag, name.digest) == \
        (domain, repository, tag, digest)
    assert name.familiar == familiar
    assert name.reference == (digest or tag)
    assert name.api_host == ("registry-1.docker.io" if domain == "docker.io" else domain)


def test_bad_references_are_refused() -> None:
    for text in ("UPPER/case", "a:b:c", "host:port:/x", "x@sha256:12"):
        with pytest.raises(InvalidReference):
            remote_name(text)


@pytest.mark.parametrize(("server", "key"), [
    ("docker.io", "https://index.docker.io/v1/"),
    ("https://index.docker.io/v1/", "https://index.docker.io/v1/"),
    ("registry-1.docker.io", "https://index.docker.io/v1/"),
    ("localhost:5000", "localhost:5000"),
    ("https://r.example.com/", "r.example.com"),
])
def test_registry_keys_are_dockers(server: str, key: str) -> None:
    assert registry_key(server) == key


def test_challenges_parse() -> None:
    bearer = parse_challenge('Bearer realm="https://auth.docker.io/token",'
                             'service="registry.docker.io",scope="repository:library/a:pull"')
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.realm == "https://auth.docker.io/token"
    assert bearer.params["scope"] == "repository:library/a:pull"
    basic = parse_challenge('Basic realm="shoal-test"')
    assert basic is not None and basic.scheme == "basic" and basic.realm == "shoal-test"
    assert parse_challenge('Bearer realm="a\\"b", error=insufficient_scope') is not None
    assert parse_challenge("") is None
    assert scope_for("team/app", "pull,push") == "repository:team/app:pull,push"
    assert Credentials("u", "p").basic_header() == "Basic dTpw"
    assert Credentials().anonymous and not Credentials(identity_token="t").anonymous


def test_errors_speak_dockers_words() -> None:
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    error = registry_error(401, body, "pull x")
    assert isinstance(error, RegistryUnauthorized)
    assert str(error) == "unauthorized: authentication required"
    assert str(registry_error(401, b"", "pull x")) == "unauthorized: authentication required"
    assert error_text(500, b"not json") == "HTTP 500"


def _entry(arch: str, variant: str | None = None, os: str = "linux",
           os_version: str | None = None, n: int = 0) -> Descriptor:
    return Descriptor("application/vnd.oci.image.manifest.v1+json",
                      "sha256:" + f"{n:064x}", 100,
                      platform=Platform(architecture=arch, os=os, variant=variant,
                                        os_version=os_version))


INDEX = Index(schema_version=2, manifests=[
    _entry("amd64", n=1), _entry("arm", "v6", n=2), _entry("arm", "v7", n=3),
    _entry("arm64", "v8", n=4), _entry("amd64", os="windows", os_version="10.0.17763.5458", n=5),
    _entry("amd64", os="windows", os_version="10.0.20348.2227", n=6), _entry("s390x", n=7),
])


@pytest.mark.parametrize(("wanted", "chosen"), [
    (WantedPlatform("linux", "amd64"), 1),
    (WantedPlatform("linux", "arm", "v7"), 3),
    (WantedPlatform("linux", "arm", "v8"), 3),  # v8 runs v7 (the best lower variant)
    (WantedPlatform("linux", "arm", "v6"), 2),
    (WantedPlatform("linux", "arm64", "v8"), 4),
    (WantedPlatform("linux", "arm64"), 4),
    (WantedPlatform("windows", "amd64", os_version="10.0.20348.1000"), 6),
    (WantedPlatform("windows", "amd64", os_version="10.0.17763.1"), 5),
    (WantedPlatform("linux", "s390x"), 7),
])
def test_the_wanted_platform_is_chosen(wanted: WantedPlatform, chosen: int) -> None:
    assert choose_manifest(INDEX, wanted).digest == "sha256:" + f"{chosen:064x}"


def test_no_matching_platform_names_what_there_is() -> None:
    with pytest.raises(ImageNotFound,
                       match=r"no matching manifest for linux/ppc64le.*linux/arm/v7"):
        choose_manifest(INDEX, WantedPlatform("linux", "ppc64le"))


def test_platform_flags_parse() -> None:
    assert parse_platform("linux/arm64/v8") == WantedPlatform("linux", "arm64", "v8")
    assert parse_platform("Linux/x86_64") == WantedPlatform("linux", "amd64", "")
    for bad in ("linux", "linux/", "a/b/c/d", "plan9/amd64"):
        with pytest.raises(InvalidArgument):
            parse_platform(bad)
