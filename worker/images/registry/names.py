"""Where a reference lives: registry host, repository path, and what to ask for (pure).

Docker's rules: a first component with a dot, a colon or ``localhost`` is a registry host
(``host:port`` allowed); otherwise the image is on Docker Hub, whose API host is
``registry-1.docker.io`` and whose one-component names live under ``library/``. Credentials for
Hub are keyed ``https://index.docker.io/v1/`` in a docker config file, others by host.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.images.reference import (
    DEFAULT_DOMAIN,
    OFFICIAL_PREFIX,
    Reference,
    familiar_name,
    parse_reference,
)

HUB_API_HOST = "registry-1.docker.io"
HUB_CONFIG_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class RemoteName:
    """An image in a registry: ``domain`` as the user wrote it (``docker.io``,
    ``localhost:5000``), ``repository`` its path there (``library/busybox``)."""

    domain: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        return HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def config_key(self) -> str:
        """The key of this registry's credentials in a docker config file."""
        return registry_key(self.domain)

    @property
    def familiar(self) -> str:
        """The name the store tags the image with (``busybox``, ``localhost:5000/app``)."""
        return familiar_name(self.domain, self.repository)

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest if given, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def local_tag(self) -> str | None:
        return f"{self.familiar}:{self.tag}" if self.tag else None

    def __str__(self) -> str:
        return str(Reference(self.familiar, self.tag, self.digest))


def split_domain(name: str) -> tuple[str, str]:
    """(domain, repository path) of a familiar or full name."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain = DEFAULT_DOMAIN if first == "index.docker.io" else first
        return domain, rest
    return DEFAULT_DOMAIN, name if sep else OFFICIAL_PREFIX + name


def remote_name(text: str) -> RemoteName:
    """Parse ``text`` (``InvalidReference`` if it is not a reference); a name alone means
    ``:latest``."""
    ref = parse_reference(text)
    domain, repository = split_domain(ref.name)
    if domain == DEFAULT_DOMAIN and "/" not in repository:
        repository = OFFICIAL_PREFIX + repository
    return RemoteName(domain, repository, ref.tag, ref.digest)


def registry_key(domain: str) -> str:
    """A registry's key in a docker config file (``docker login HOST`` writes it so)."""
    host = domain.removeprefix("https://").removeprefix("http://").rstrip("/")
    if host in (DEFAULT_DOMAIN, "index.docker.io", HUB_API_HOST, "index.docker.io/v1"):
        return HUB_CONFIG_KEY
    return host
