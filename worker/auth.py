"""A worker's keys, in ``STATE_DIR/auth`` (0700; files 0600).

- ``node.key``: the worker's keypair. Its listener answers with it, and it joins the cluster
  with it (the scheduler dials the worker back with the node record's copy of the public key).
- ``cluster.key``: the public key of the cluster it enrolled in with a worker token; the
  cluster's managers are admitted by it (role ``manager``).
- ``local-client.key``: a client keypair left for root's CLI on this host
  (``channels.credentials.publish_local``).
- ``clients.json`` and ``client-token``: a standalone worker's own clients, enrolled with the
  client token it prints (``shoal join-token client`` on its socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import structlog

import channels
from channels import Access, key_text, parse_key
from channels._curve import (
    CLIENT,
    ENROLL_PREFIX,
    MANAGER,
    format_token,
    load_keypair,
    new_secret,
    parse_token,
    token_keypair,
    write_private,
)
from protocol.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    ShoalError,
    Unsupported,
)
from protocol.messages import (
    Enroll,
    Enrolled,
    GetJoinToken,
    JoinToken,
    KeyInfo,
    KeyList,
    ListKeys,
    Message,
    Ok,
    RevokeKey,
)

log = structlog.get_logger("shoal.worker")


class WorkerAuth:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "auth"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        self.keypair = load_keypair(self.dir / "node.key")
        self.local = load_keypair(self.dir / "local-client.key")
        self.cluster_key: bytes | None = None
        with contextlib.suppress(FileNotFoundError):
            self.cluster_key = parse_key((self.dir / "cluster.key").read_text(), "cluster.key")
        self._clients: dict[str, str] = self._load_clients()
        self._token: bytes | None = None
        with contextlib.suppress(FileNotFoundError):
            self._token = parse_key((self.dir / "client-token").read_text(), "client-token")
        self.access = Access()
        self._publish()

    def _load_clients(self) -> dict[str, str]:
        try:
            data = json.loads((self.dir / "clients.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise InvalidArgument(f"{self.dir / 'clients.json'} is not JSON: {exc}") from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _publish(self) -> None:
        roles = dict.fromkeys(self._clients, CLIENT)
        roles[key_text(self.local.public)] = CLIENT
        if self.cluster_key is not None:
            roles[key_text(self.cluster_key)] = MANAGER
        if self._token is not None:
            roles[key_text(token_keypair(self._token).public)] = ENROLL_PREFIX + CLIENT
        self.access.replace(roles)

    @property
    def server(self) -> channels.CurveServer:
        return channels.CurveServer(self.keypair, self.access)

    def scheduler_security(self) -> channels.CurveClient | None:
        """How this worker dials the cluster's managers, once enrolled."""
        if self.cluster_key is None:
            return None
        return channels.CurveClient(self.cluster_key, self.keypair)

    # --- joining a cluster -------------------------------------------------------------------
    async def enroll_until_done(self, schedulers: list[str], token: str, node_id: str,
                                options: channels.ChannelOptions,
                                stop: asyncio.Event) -> list[str]:
        """Enroll this worker's key with the cluster ``token`` names; returns the managers'
        addresses it was told (none when it was enrolled there already). While no scheduler
        answers it tries again, with a backoff, until ``stop``; a refusal (a wrong or rotated
        token, another node's name) is raised."""
        cluster_key, secret = parse_token(token)
        if self.cluster_key == cluster_key:
            return []
        backoff = 0.2
        while not stop.is_set():
            learned = await self._enroll_once(schedulers, cluster_key, secret, node_id, options)
            if learned is not None:
                return learned
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 10.0)
        return []

    async def _enroll_once(self, schedulers: list[str], cluster_key: bytes, secret: bytes,
                           node_id: str, options: channels.ChannelOptions) -> list[str] | None:
        holder = channels.CurveClient(cluster_key, token_keypair(secret))
        for address in schedulers:
            try:
                async with await channels.connect(address, options, holder) as conn:
                    answer = await channels.request(
                        conn.sender, lambda reply: Enroll(key=key_text(self.keypair.public),
                                                          name=node_id, reply=reply),
                        timeout=options.connect_timeout + 5)
            except (Forbidden, Conflict, InvalidArgument):
                raise
            except ShoalError as exc:
                if "refused this client's key" in str(exc) or "its key is not" in str(exc):
                    raise Forbidden("the scheduler refused the join token: it is not this "
                                    "cluster's, or it was rotated (shoal join-token worker on "
                                    "a manager prints the current one)") from None
                log.info("enrollment: no answer; trying the next scheduler", address=address,
                         error=str(exc))
                continue
            if not isinstance(answer, Enrolled):
                raise Forbidden(f"{address} answered {type(answer).__name__} to Enroll")
            if answer.role != "worker":
                raise Forbidden(f"that is a {answer.role} token, not a worker token (shoal "
                                "join-token worker on a manager)")
            self.cluster_key = cluster_key
            write_private(self.dir / "cluster.key", key_text(cluster_key) + "\n")
            self._publish()
            log.info("enrolled in the cluster", node_id=node_id, cluster=key_text(cluster_key))
            return list(answer.managers)
        return None

    # --- a standalone worker's own clients ---------------------------------------------------
    def handles(self, message: Message) -> bool:
        return isinstance(message, GetJoinToken | ListKeys | RevokeKey | Enroll)

    async def handle(self, message: Message) -> Message:
        if isinstance(message, GetJoinToken):
            if message.role != CLIENT:
                raise InvalidArgument("a worker prints client tokens only: workers join a "
                                      "scheduler (shoal join-token worker on a manager)")
            if message.rotate or self._token is None:
                self._token = new_secret()
                write_private(self.dir / "client-token", key_text(self._token) + "\n")
                self._publish()
            return JoinToken(role="client", token=format_token(self.keypair.public,
                                                               self._token))
        if isinstance(message, ListKeys):
            return KeyList(keys=[KeyInfo(key=text, role=CLIENT, name=name)
                                 for text, name in sorted(self._clients.items())])
        if isinstance(message, RevokeKey):
            matches = [text for text, name in self._clients.items()
                       if text.startswith(message.key.lower()) or name == message.key]
            if not message.key or not matches:
                raise NotFound(f"no enrolled key {message.key!r}")
            if len(matches) > 1:
                raise InvalidArgument(f"{message.key!r} names {len(matches)} keys")
            del self._clients[matches[0]]
            self._save_clients()
            return Ok()
        raise Forbidden(f"{type(message).__name__} takes a join token's key")

    async def handle_enroll(self, request: channels.FromPeer) -> Message:
        message = request.message
        if not isinstance(message, Enroll):
            raise Forbidden("a join token's key may only enroll a key (Enroll)")
        if request.role != ENROLL_PREFIX + CLIENT:
            raise Unsupported("a worker enrolls clients only")
        parse_key(message.key, "key")
        if message.key in (key_text(self.keypair.public), key_text(self.local.public)):
            raise Forbidden("that is one of this worker's own keys")
        self._clients[message.key] = message.name
        self._save_clients()
        log.info("client enrolled", name=message.name, key=message.key)
        return Enrolled(role="client", name=message.name,
                        cluster_key=key_text(self.keypair.public), managers=[])

    def _save_clients(self) -> None:
        write_private(self.dir / "clients.json", json.dumps(self._clients) + "\n")
        self._publish()
