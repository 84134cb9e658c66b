"""Who may talk to the cluster: its CURVE key, the join tokens, and the enrolled keys, in etcd.

The managers share one keypair, the cluster's (``auth-cluster/curve``, made by the first
scheduler in a transaction): a join token carries its public key, so a worker or a client can
reach whichever manager answers, and managers authenticate to workers and to each other with
it. Only managers read etcd, so holding etcd's client certificate is what makes a manager.

A join token (``SHOAL-1-<cluster key>-<secret>``) per role is kept in ``auth-tokens/<role>``;
its holder proves it by a CURVE handshake with the key the secret derives
(``channels.Keypair.derive``), so the secret never travels, and may then only ``Enroll`` its own
key. Enrolled keys are ``auth-keys/<key>`` (role and name: a worker's node id). Every scheduler
follows the three collections into its listener's ``Access``: an enrolled or revoked key counts
on every manager at once, and revoking cuts the key's sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import msgspec
import structlog

from channels import Access, Keypair, key_text, parse_key
from channels._curve import (
    CLIENT,
    ENROLL_PREFIX,
    KEY_TEXT_SIZE,
    MANAGER,
    WORKER,
    format_token,
    load_keypair,
    new_secret,
    token_keypair,
    write_private,
)
from protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound, ShoalError
from protocol.limits import MAX_NAME_LEN
from protocol.messages import KeyInfo
from scheduler.store import Kind, Store, watch_records

log = structlog.get_logger("shoal.scheduler")

T = TypeVar("T")
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
ENROLLABLE = (WORKER, CLIENT)
RETRY = 1.0


class ClusterKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    public: str
    secret: str


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    created: float = 0.0


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    role: _Name
    name: _Name
    created: float = 0.0


CLUSTER_KEY: Kind[ClusterKeyRecord] = Kind("auth-cluster", ClusterKeyRecord)
TOKENS: Kind[TokenRecord] = Kind("auth-tokens", TokenRecord)
KEYS: Kind[KeyRecord] = Kind("auth-keys", KeyRecord)


class ClusterAuth:
    """The cluster's keys as this scheduler knows them; ``access`` is what its listener
    admits. ``await load()`` once, then ``run()`` follows changes until cancelled."""

    def __init__(self, store: Store, state_dir: Path | None = None) -> None:
        self.store = store
        self.state_dir = state_dir
        self.access = Access()
        self.keypair: Keypair | None = None
        self._tokens: dict[str, bytes] = {}  # role → secret
        self._keys: dict[str, KeyRecord] = {}  # key text → record
        # This manager's own writes, by id: (revision, value or None for a delete), kept over
        # what the watch has delivered until it reaches that revision, so that a watch event
        # older than an enrollment cannot cut the key it just admitted.
        self._keys_ahead: dict[str, tuple[int, KeyRecord | None]] = {}
        self._tokens_ahead: dict[str, tuple[int, TokenRecord | None]] = {}

    @property
    def cluster(self) -> Keypair:
        if self.keypair is None:
            raise RuntimeError("ClusterAuth.load() first")
        return self.keypair

    async def load(self) -> None:
        """The cluster's keypair (made if this is the first scheduler), tokens and keys."""
        made = Keypair.generate()
        record = ClusterKeyRecord(public=key_text(made.public), secret=key_text(made.secret))
        try:
            await self.store.create(CLUSTER_KEY, "curve", record)
            log.info("cluster key made", key=record.public)
        except Conflict:
            pass
        stored = await self.store.get(CLUSTER_KEY, "curve")
        if stored is None:
            raise NotFound("the cluster key vanished from etcd while it was being read")
        self.keypair = Keypair(public=parse_key(stored.value.public, "cluster key"),
                               secret=parse_key(stored.value.secret, "cluster key"))
        if self.state_dir is not None:
            write_private(self.state_dir / "cluster.key", self.keypair.text() + "\n")
        for role in ENROLLABLE:
            with contextlib.suppress(Conflict):
                await self.store.create(TOKENS, role, TokenRecord(
                    secret=key_text(new_secret()), created=time.time()))
        async for token in self.store.list(TOKENS):
            self._tokens[token.id] = parse_key(token.value.secret, "token")
        async for key in self.store.list(KEYS):
            self._keys[key.id] = key.value
        self._publish()

    def _publish(self) -> None:
        roles = {text: record.role for text, record in self._keys.items()
                 if len(text) == KEY_TEXT_SIZE}
        roles.update({key_text(token_keypair(secret).public): ENROLL_PREFIX + role
                      for role, secret in self._tokens.items() if role in ENROLLABLE})
        roles[key_text(self.cluster.public)] = MANAGER
        self.access.replace(roles)

    async def run(self) -> None:
        """Follow tokens and keys (every manager's enrollments and revocations)."""
        await asyncio.gather(self._follow(TOKENS, self._tokens_ahead, self._set_tokens),
                             self._follow(KEYS, self._keys_ahead, self._set_keys))

    async def _follow(self, kind: Kind[T], ahead: dict[str, tuple[int, T | None]],
                      apply: Callable[[dict[str, T]], None]) -> None:
        while True:
            try:
                fresh: dict[str, T] = {}
                revision = 0
                async for page in self.store.pages(kind):
                    revision = page.revision
                    fresh.update((r.id, r.value) for r in page.records)
                apply(overlay_ahead(fresh, ahead, revision))
                async for event in watch_records(self.store.client, self.store.layout, kind,
                                                 start_revision=revision + 1):
                    if event.value is None:
                        fresh.pop(event.id, None)
                    else:
                        fresh[event.id] = event.value
                    apply(overlay_ahead(fresh, ahead, event.revision))
            except ShoalError as exc:  # Compacted included: list again
                log.info("following the cluster's keys failed; listing again", error=str(exc))
                await asyncio.sleep(RETRY)

    def _set_tokens(self, fresh: dict[str, TokenRecord]) -> None:
        tokens: dict[str, bytes] = {}
        for role, value in fresh.items():
            try:
                tokens[role] = parse_key(value.secret, "token")
            except InvalidArgument:
                log.error("a join token in etcd is not a key; ignored", role=role)
        self._tokens = tokens
        self._publish()

    def _set_keys(self, fresh: dict[str, KeyRecord]) -> None:
        self._keys = dict(fresh)
        self._publish()

    # --- the verbs -------------------------------------------------------------------------
    async def token(self, role: str, rotate: bool = False) -> str:
        if role == MANAGER:
            raise InvalidArgument("there is no manager token: managers share the cluster's "
                                  "etcd, so a scheduler joins with --etcd (and etcd's client "
                                  "certificate when it uses TLS)")
        if role not in ENROLLABLE:
            raise InvalidArgument(f"no join token for role {role!r} (worker or client)")
        if rotate:
            record = await self.store.get(TOKENS, role)
            secret = new_secret()
            value = TokenRecord(secret=key_text(secret), created=time.time())
            if record is None:
                written = await self.store.create(TOKENS, role, value)
            else:
                written = await self.store.update(TOKENS, role, value, record.mod_revision)
            self._tokens_ahead[role] = (written, value)
            self._tokens[role] = secret
            self._publish()
            log.info("join token rotated", role=role)
        current = self._tokens.get(role)
        if current is None:
            raise NotFound(f"no {role} token in etcd")
        return format_token(self.cluster.public, current)

    async def enroll(self, role: str, key: str, name: str) -> KeyRecord:
        """Admit ``key`` for ``role`` under ``name``. A worker's name is its node id: one key
        per node, so a token holder cannot take over a node already enrolled."""
        if role not in ENROLLABLE:
            raise Forbidden(f"a {role} token enrolls nothing")
        parse_key(key, "key")
        if key == key_text(self.cluster.public):
            raise Forbidden("that is the cluster's own key")
        record = KeyRecord(role=role, name=name, created=time.time())
        existing = self._keys.get(key)
        if existing is not None:
            if existing.role == role and (role == CLIENT or existing.name == name):
                return existing  # the same enrollment again (a retry): nothing to do
            raise Conflict(f"this key is already enrolled as {existing.role} {existing.name!r}")
        if role == WORKER:
            for text, other in self._keys.items():
                if other.role == WORKER and other.name == name and text != key:
                    raise Conflict(f"node {name!r} is enrolled with another key (remove it "
                                   "first: shoal node rm, or shoal key rm)")
        try:
            written = await self.store.create(KEYS, key, record)
        except Conflict:
            stored = await self.store.get(KEYS, key)
            if stored is None or stored.value.role != role or stored.value.name != name:
                raise
            written, record = stored.mod_revision, stored.value
        self._keys_ahead[key] = (written, record)
        self._keys[key] = record
        self._publish()  # admitted here at once; other managers follow the watch
        log.info("key enrolled", role=role, name=name, key=key)
        return record

    def keys(self) -> list[KeyInfo]:
        return [KeyInfo(key=text, role=record.role, name=record.name, created=record.created)
                for text, record in sorted(self._keys.items(),
                                           key=lambda item: (item[1].role, item[1].name))]

    def name_of(self, key: str) -> str | None:
        """The name ``key`` was enrolled under (a worker's node id), if it is enrolled."""
        record = self._keys.get(key)
        return record.name if record is not None else None

    def resolve(self, prefix: str) -> str:
        """The one enrolled key whose text starts with ``prefix`` (or whose name it is)."""
        named = [text for text, record in self._keys.items() if record.name == prefix]
        if len(named) == 1:
            return named[0]
        matches = [text for text in self._keys if text.startswith(prefix.lower())]
        if not prefix or not matches:
            raise NotFound(f"no enrolled key {prefix!r}")
        if len(matches) > 1:
            raise InvalidArgument(f"{prefix!r} names {len(matches)} keys: give more of it")
        return matches[0]

    async def revoke(self, key: str) -> KeyRecord:
        text = self.resolve(key)
        record = self._keys[text]
        stored = await self.store.get(KEYS, text)
        if stored is not None:
            deleted = await self.store.delete(KEYS, text, stored.mod_revision)
            self._keys_ahead[text] = (deleted, None)
        self._keys.pop(text, None)  # the watch may have been first
        self._publish()  # cut here at once; other managers follow the watch
        log.info("key revoked", key=text, role=record.role, name=record.name)
        return record

    async def revoke_node(self, node_id: str) -> None:
        """A removed node's key goes with it."""
        for text, record in list(self._keys.items()):
            if record.role == WORKER and record.name == node_id:
                await self.revoke(text)

    async def local_client(self, name: str) -> Keypair:
        """The keypair this scheduler leaves for root's CLI on its host (``local:NAME``),
        enrolled like any client so that every manager admits it after a redirect."""
        path = self.state_dir / "local-client.key" if self.state_dir else None
        keys = load_keypair(path) if path is not None else Keypair.generate()
        await self.enroll(CLIENT, key_text(keys.public), f"local:{name}")
        self.access.grant(keys.public, CLIENT)
        return keys


def overlay_ahead(fresh: dict[str, T], ahead: dict[str, tuple[int, T | None]],
                  seen: int) -> dict[str, T]:
    """``fresh`` (what a watch has delivered up to revision ``seen``) with this manager's own
    later writes laid over it; writes the watch has reached are forgotten from ``ahead``."""
    merged = dict(fresh)
    for record_id, (revision, value) in list(ahead.items()):
        if revision <= seen:
            del ahead[record_id]
        elif value is None:
            merged.pop(record_id, None)
        else:
            merged[record_id] = value
    return merged
