"""One registry's HTTP API v2 over aiohttp: scheme and TLS, the ``/v2/`` ping, authentication
(basic, or bearer tokens fetched per scope from the challenge's realm) and error answers.

aiohttp, not http.client or our own code: the daemons are asyncio programs, and a pull is many
concurrent streamed downloads over pooled keep-alive connections with redirects (blob storage)
and TLS; aiohttp does all of that on the event loop, and its server side gives the tests a
lying registry in a few lines.

TLS trusts the system's CAs, the CA the caller gives (``ca_pem``) and a docker ``certs.d``
directory per host (``<dir>/<host>/*.crt``, client ``*.cert``/``*.key`` pairs). Plain http
only with ``insecure`` (then https without verification is tried first, as docker does for an
insecure registry, and http if the host does not speak TLS) or, as docker allows by default,
for a registry on loopback (https first, verified; http if the host does not speak TLS).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from worker.images.registry.auth import ANONYMOUS, Challenge, Credentials, parse_challenge
from worker.images.registry.errors import RegistryError, RegistryUnauthorized, registry_error

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0  # a stalled transfer fails (and a pull resumes it) after this long
MAX_ERROR_BODY = 65536
MAX_TOKEN_BYTES = 1024 * 1024
DEFAULT_CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """How to reach a registry: credentials, an extra CA (PEM text), certs.d directories and
    whether plain http / unverified TLS is allowed."""

    credentials: Credentials = ANONYMOUS
    ca_pem: str = ""
    insecure: bool = False
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS


class _Token(msgspec.Struct):
    token: str = ""
    access_token: str = ""


def is_loopback(host: str) -> bool:
    """Docker's default insecure registries are those on loopback: plain http is tried there
    (after https) without ``--insecure-registry``."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def tls_context(host: str, access: RegistryAccess) -> ssl.SSLContext:
    if access.insecure:
        # Nothing is verified: loading the system's CA store (tens of ms of CPU for each
        # session, a good part of a small pull) would be wasted. A client certificate from a
        # certs directory is still offered.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context()
    if access.ca_pem:
        try:
            context.load_verify_locations(cadata=access.ca_pem)
        except ssl.SSLError as exc:
            raise RegistryError(f"the CA given for {host} is not a PEM certificate: {exc}") \
                from exc
    for base in access.certs_dirs:
        directory = base / host
        if not directory.is_dir():
            continue
        for cert in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(cert))
        for client in sorted(directory.glob("*.cert")):
            key = client.with_suffix(".key")
            if key.is_file():
                context.load_cert_chain(str(client), str(key))
    return context


class RegistrySession:
    """Requests to one registry host; use ``async with``. ``request`` adds the authorization
    the registry's challenge asks for, for the given token scope."""

    def __init__(self, host: str, access: RegistryAccess, *, connections: int = 8) -> None:
        self.host = host
        self.access = access
        self.connections = connections
        self.base = URL(f"https://{host}")
        self._http: aiohttp.ClientSession | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}

    async def __aenter__(self) -> RegistrySession:
        connector = aiohttp.TCPConnector(ssl=tls_context(self.host, self.access),
                                         limit=self.connections)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT,
                                        sock_read=READ_TIMEOUT)
        self._http = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                           auto_decompress=False,
                                           headers={"User-Agent": "shoal"})
        try:
            await self._ping()
        except BaseException:
            await self._http.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use the session with async with"
        return self._http

    async def _ping(self) -> None:
        """``GET /v2/``: which scheme answers and which challenge the registry sets."""
        schemes = ["https", "http"] if self.access.insecure or is_loopback(self.host) \
            else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            if isinstance(last, aiohttp.ClientConnectorCertificateError):
                break  # it speaks TLS, with a certificate we do not trust: http is no help
            base = URL(f"{scheme}://{self.host}")
            try:
                async with self.http.get(base / "v2/") as response:
                    body = await response.content.read(MAX_ERROR_BODY)
                    self.base = base
                    if response.status == 401:
                        self._challenge = parse_challenge(
                            response.headers.get("WWW-Authenticate", ""))
                    elif response.status >= 400:
                        raise registry_error(response.status, body, f"ping {self.host}")
                    return
            except (aiohttp.ClientSSLError, aiohttp.ClientConnectorError,
                    aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                last = exc
        hint = "" if self.access.insecure else \
            " (give its CA with --ca, or use --insecure-registry)"
        raise RegistryError(f"cannot reach registry {self.host}: {last}{hint}",
                            details={"registry": self.host}) from last

    async def _authorization(self, scope: str, *, refresh: bool = False) -> str | None:
        challenge = self._challenge
        credentials = self.access.credentials
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if credentials.anonymous:
                return None
            return credentials.basic_header()
        if challenge.scheme != "bearer":
            raise RegistryError(f"registry {self.host} asks for {challenge.scheme} "
                                "authentication, which shoal does not speak")
        if not refresh and scope in self._tokens:
            return self._tokens[scope]
        token = await self._fetch_token(challenge, scope)
        self._tokens[scope] = f"Bearer {token}"
        return self._tokens[scope]

    async def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        if not challenge.realm:
            raise RegistryError(f"registry {self.host}: a bearer challenge without a realm")
        credentials = self.access.credentials
        # Several scopes (a push that mounts from another repository) are repeated params.
        params = [("service", challenge.params.get("service", "")),
                  *(("scope", part) for part in scope.split())]
        params = [(k, v) for k, v in params if v]
        headers: dict[str, str] = {}
        realm = URL(challenge.realm)
        try:
            if credentials.identity_token:
                form = [("grant_type", "refresh_token"),
                        ("refresh_token", credentials.identity_token), ("client_id", "shoal"),
                        *params]
                request = self.http.post(realm, data=form)
            else:
                if not credentials.anonymous:
                    headers["Authorization"] = credentials.basic_header()
                    params.append(("account", credentials.username))
                request = self.http.get(realm.update_query(params), headers=headers)
            async with request as response:
                body = await response.content.read(MAX_TOKEN_BYTES)
                if response.status != 200:
                    raise registry_error(response.status, body, f"login to {self.host}")
        except aiohttp.ClientError as exc:
            raise RegistryError(f"cannot get a token from {realm}: {exc}") from exc
        try:
            answer = msgspec.json.decode(body, type=_Token)
        except msgspec.DecodeError as exc:
            raise RegistryError(f"token server {realm} answered no token: {exc}") from exc
        token = answer.token or answer.access_token
        if not token:
            raise RegistryUnauthorized("unauthorized: the token server gave no token")
        return token

    async def request(self, method: str, url: URL | str, scope: str, *,
                      headers: Mapping[str, str] | None = None, data: Any = None,
                      what: str = "", ok: tuple[int, ...] = (200,),
                      body_factory: Any = None) -> aiohttp.ClientResponse:
        """Send an authorized request; a 401 refreshes the token once. Returns the response
        (the caller releases it) when its status is in ``ok``, else raises the registry's
        error in docker's words. ``body_factory`` makes the body again for the retry."""
        target = url if isinstance(url, URL) else self.base.join(URL(url))
        for attempt in (0, 1):
            sent = dict(headers or {})
            authorization = await self._authorization(scope, refresh=attempt == 1)
            if authorization is not None:
                sent["Authorization"] = authorization
            body = body_factory() if body_factory is not None else data
            try:
                response = await self.http.request(method, target, headers=sent, data=body)
            except aiohttp.ClientError as exc:
                raise RegistryError(f"{what or method}: {exc}",
                                    details={"registry": self.host}) from exc
            if response.status in ok:
                return response
            error_body = await response.content.read(MAX_ERROR_BODY)
            response.release()
            if response.status == 401 and attempt == 0:
                fresh = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                if fresh is not None:
                    self._challenge = fresh
                if self._challenge is not None and (self._challenge.scheme == "bearer" or
                                                    fresh is not None):
                    continue
            raise registry_error(response.status, error_body, what or f"{method} {target.path}")
        raise AssertionError("unreachable")

    def url(self, path: str) -> URL:
        return self.base.join(URL(path))
