"""The HTTP server: routes with and without Docker's ``/vX.Y`` prefix, Docker's headers and
error shape on every answer, bounded requests, and where it listens (a 0660 unix socket, or tcp
with TLS client certificates or explicitly insecure)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from dockerapi import (
    build,
    containers,
    execs,
    files,
    images,
    networks,
    system,
    transfers,
    volumes,
)
from dockerapi import container_changes as changes
from dockerapi.address import DockerListen
from dockerapi.containers import STATE
from dockerapi.errors import ApiError, json_error, missing_endpoint, missing_object
from dockerapi.state import FrontState
from dockerapi.verbs import Verbs
from protocol.errors import AddressError, ShoalError

log = structlog.get_logger("shoal.dockerapi")

SOCKET_GROUP = "shoal"
MAX_BODY = 1 << 20  # JSON bodies; image loads are streamed, never held
KEEPALIVE = 75.0  # an idle connection (or one that never finishes its head) is closed after it
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return ()


@web.middleware
async def docker_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as ``{"message": ...}`` with Docker's status; the API version checked."""
    try:
        version = request.match_info.get("version")
        if version is not None:
            asked = _version_tuple(version)
            if not asked:
                raise ApiError(400, f"invalid API version {version!r}")
            if asked > _version_tuple(system.API_VERSION):
                raise ApiError(400, f"client version {version} is too new. Maximum supported "
                                    f"API version is {system.API_VERSION}")
            if asked < _version_tuple(system.MIN_API_VERSION):
                raise ApiError(400, f"client version {version} is too old. Minimum supported "
                                    f"API version is {system.MIN_API_VERSION}, please upgrade "
                                    "your client to a newer version")
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status == 404:
            return json_error(404, "page not found")
        return json_error(exc.status, exc.reason)
    except ShoalError as exc:
        return json_error(500, f"{type(exc).__name__}: {exc}")
    except ConnectionError:
        raise
    except Exception as exc:  # one request fails, the daemon goes on
        log.exception("docker api request failed", path=request.path, method=request.method)
        return json_error(500, f"internal error: {type(exc).__name__}")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = system.API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = "shoal (linux)"
    response.headers["Docker-Experimental"] = "false"


def routes() -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of every endpoint served, without the version prefix."""
    c, x, i, s, n, v = containers, execs, images, system, networks, volumes
    served: list[tuple[str, str, Handler]] = [
        ("GET", "/_ping", s.ping), ("HEAD", "/_ping", s.ping),
        ("GET", "/version", s.version), ("GET", "/info", s.info),
        ("GET", "/events", s.events),
        ("POST", "/containers/create", c.create), ("GET", "/containers/json", c.list_),
        ("POST", "/containers/prune", c.prune),
        ("GET", "/containers/{id}/json", c.inspect), ("POST", "/containers/{id}/start", c.start),
        ("POST", "/containers/{id}/stop", c.stop), ("POST", "/containers/{id}/kill", c.kill),
        ("POST", "/containers/{id}/restart", c.restart),
        ("POST", "/containers/{id}/wait", c.wait), ("POST", "/containers/{id}/resize", c.resize),
        ("POST", "/containers/{id}/attach", c.attach), ("GET", "/containers/{id}/logs", c.logs),
        ("GET", "/containers/{id}/top", c.top), ("DELETE", "/containers/{id}", c.remove),
        ("POST", "/containers/{id}/exec", x.create), ("POST", "/exec/{id}/start", x.start),
        ("POST", "/exec/{id}/resize", x.resize), ("GET", "/exec/{id}/json", x.inspect),
        ("GET", "/images/json", i.list_), ("POST", "/images/load", i.load),
        ("POST", "/images/create", i.create), ("POST", "/images/prune", i.prune),
        ("GET", "/images/get", i.get), ("GET", "/images/{name:.+}/get", i.get),
        ("POST", "/images/{name:.+}/push", transfers.push),
        ("POST", "/images/{name:.+}/tag", i.tag), ("POST", "/build", build.build),
        ("GET", "/images/{name:.+}/json", i.inspect), ("DELETE", "/images/{name:.+}", i.remove),
        ("GET", "/networks", n.list_), ("POST", "/networks/create", n.create),
        ("POST", "/networks/prune", n.prune), ("GET", "/networks/{name}", n.inspect),
        ("DELETE", "/networks/{name}", n.remove),
        ("POST", "/networks/{name}/connect", n.connect),
        ("POST", "/networks/{name}/disconnect", n.disconnect),
        ("GET", "/volumes", v.list_), ("POST", "/volumes/create", v.create),
        ("POST", "/volumes/prune", v.prune), ("GET", "/volumes/{name:.+}", v.inspect),
        ("DELETE", "/volumes/{name:.+}", v.remove),
    ]
    served += [("POST", "/containers/{id}/pause", changes.pause),
               ("POST", "/containers/{id}/unpause", changes.unpause),
               ("POST", "/containers/{id}/rename", changes.rename),
               ("POST", "/containers/{id}/update", changes.update),
               ("GET", "/containers/{id}/stats", changes.stats)]
    for verb in ("changes",):
        served.append(("GET", f"/containers/{{id}}/{{verb:{verb}}}", c.not_served))
    served += [
        ("GET", "/containers/{id}/archive", files.archive_get),
        ("HEAD", "/containers/{id}/archive", files.archive_head),
        ("PUT", "/containers/{id}/archive", files.archive_put),
        ("GET", "/containers/{id}/export", files.export),
        ("GET", "/images/{name:.+}/history", i.history), ("GET", "/system/df", s.disk_usage),
    ]
    # Endpoints whose feature other parts of shoal bring (errors.MISSING).
    for method, path, feature in (("POST", "/build/prune", "build"),):
        served.append((method, path, missing_endpoint(feature)))
    # Inspecting one object of a kind shoal does not serve: 404, so that a type-less
    # ``docker inspect NAME`` passes over it as docker does over a kind with no such object.
    for path, kind, feature in (
            ("/plugins/{name}/json", "plugin", "plugins"), ("/nodes/{name}", "node", "swarm"),
            ("/services/{name}", "service", "swarm"), ("/tasks/{name}", "task", "swarm"),
            ("/secrets/{name}", "secret", "secrets"), ("/configs/{name}", "config", "secrets")):
        served.append(("GET", path, missing_object(kind, feature)))
    for prefix, feature in (("swarm", "swarm"), ("nodes", "swarm"), ("services", "swarm"),
                            ("tasks", "swarm"), ("secrets", "secrets"),
                            ("configs", "secrets"), ("plugins", "plugins")):
        served.append(("*", f"/{prefix}", missing_endpoint(feature)))
        served.append(("*", f"/{prefix}/{{rest:.*}}", missing_endpoint(feature)))
    return served


def make_app(state: FrontState) -> web.Application:
    app = web.Application(middlewares=[docker_answers], client_max_size=MAX_BODY)
    app[STATE] = state
    for method, path, handler in routes():
        app.router.add_route(method, path, handler)
        app.router.add_route(method, r"/v{version:[^/]+}" + path, handler)
    app.on_response_prepare.append(_headers)
    return app


class DockerApiServer:
    """The Docker API of one daemon, served at ``address`` until ``close``."""

    def __init__(self, runner: web.AppRunner, state: FrontState, address: str) -> None:
        self._runner = runner
        self._state = state
        self.address = address

    @classmethod
    async def start(cls, listen: DockerListen, daemon: str) -> DockerApiServer:
        """Listen per ``listen``; requests become verbs sent to the daemon at ``daemon``."""
        state = FrontState(Verbs(daemon))
        runner = web.AppRunner(make_app(state), handler_cancellation=True,
                               keepalive_timeout=KEEPALIVE, access_log=None)
        await runner.setup()
        try:
            address = await _bind(runner, listen)
        except BaseException:
            await runner.cleanup()
            raise
        log.info("docker api listening", address=address, daemon=daemon)
        return cls(runner, state, address)

    async def close(self) -> None:
        await self._runner.cleanup()
        await self._state.verbs.close()


async def _bind(runner: web.AppRunner, listen: DockerListen) -> str:
    if listen.path is not None:
        path = listen.path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_socket() and _answers(path):
            raise AddressError(f"another daemon serves the Docker API on {path}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        site: web.BaseSite = web.UnixSite(runner, str(path))
        await site.start()
        group = -1
        with contextlib.suppress(KeyError):
            import grp  # a unix socket's group: POSIX only, as the socket is

            group = grp.getgrnam(SOCKET_GROUP).gr_gid
        os.chown(path, 0 if os.geteuid() == 0 else -1, group)
        os.chmod(path, 0o660)
        return f"unix://{path}"
    context = None
    if listen.tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                             cafile=str(listen.tls.cacert))
        context.load_cert_chain(str(listen.tls.cert), str(listen.tls.key))
        context.verify_mode = ssl.CERT_REQUIRED
    site = web.TCPSite(runner, listen.host, listen.port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        raise AddressError(f"cannot listen on {listen.host}:{listen.port}: "
                           f"{exc.strerror}") from exc
    host, port = runner.addresses[-1][:2]
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}"


def _answers(path: os.PathLike[str]) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True
