"""CURVE security for channels: keys, who a listener admits, and the options that ask for it.

ZeroMQ's CURVE mechanism (RFC 26/CurveZMQ) authenticates both ends by their Curve25519 keys and
encrypts every frame. A listener holds its keypair and an ``Access``: the live map from a
client's public key to its role (``manager``, ``worker``, ``client``, or ``enroll:ROLE`` for the
key derived from a join token). A key not in it never completes the handshake, so nothing is
allocated for it; a key revoked later is cut on its next frame (every frame carries the key it
was authenticated with) and its sessions are closed at once.

Keys are 32 raw bytes; on paper (files, tokens) they are lowercase base32 without padding, 52
characters (``key_text``). The crypto library is imported only when a key is made, so a client
that only reads keys from a file pays nothing for it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.errors import InvalidArgument

KEY_SIZE = 32
KEY_TEXT_SIZE = 52

# Roles a key can hold. A ``local`` peer reached the listener through its root-only ipc socket
# (or in-process); ``insecure`` through a tcp listener an operator opened without CURVE.
MANAGER, WORKER, CLIENT = "manager", "worker", "client"
LOCAL, INSECURE = "local", "insecure"
ROLES = (MANAGER, WORKER, CLIENT)
ENROLL_PREFIX = "enroll:"  # a join token's key: it may only enroll a key for ROLE


def key_text(key: bytes) -> str:
    """The printable form of a 32-byte key."""
    if len(key) != KEY_SIZE:
        raise InvalidArgument(f"a CURVE key has {KEY_SIZE} bytes, not {len(key)}")
    return base64.b32encode(key).decode("ascii").rstrip("=").lower()


def parse_key(text: str, what: str = "key") -> bytes:
    """A key from its printable form; InvalidArgument naming ``what`` when it is not one."""
    cleaned = text.strip()
    if len(cleaned) != KEY_TEXT_SIZE:
        raise InvalidArgument(f"{what}: expected {KEY_TEXT_SIZE} base32 characters, "
                              f"got {len(cleaned)}")
    try:
        key = base64.b32decode(cleaned.upper() + "====")
    except ValueError:
        raise InvalidArgument(f"{what}: not base32 text") from None
    if len(key) != KEY_SIZE:
        raise InvalidArgument(f"{what}: not a {KEY_SIZE}-byte key")
    return key


@dataclass(frozen=True, slots=True)
class Keypair:
    public: bytes
    secret: bytes = field(repr=False)

    @staticmethod
    def generate() -> Keypair:
        from nacl.bindings import crypto_box_keypair

        public, secret = crypto_box_keypair()
        return Keypair(public=public, secret=secret)

    @staticmethod
    def derive(seed: bytes) -> Keypair:
        """The keypair a secret stands for: a join token's holder proves it has the token by
        completing a CURVE handshake with this key, without ever sending the secret."""
        from nacl.bindings import crypto_scalarmult_base

        secret = hashlib.blake2b(seed, digest_size=KEY_SIZE, person=b"shoal-token-key").digest()
        return Keypair(public=crypto_scalarmult_base(secret), secret=secret)

    def text(self) -> str:
        """``PUBLIC SECRET`` on one line: what a key file holds."""
        return f"{key_text(self.public)} {key_text(self.secret)}"

    @staticmethod
    def parse(text: str, what: str = "key file") -> Keypair:
        parts = text.split()
        if len(parts) != 2:
            raise InvalidArgument(f"{what}: expected a public and a secret key")
        public, secret = parse_key(parts[0], what), parse_key(parts[1], what)
        return Keypair(public=public, secret=secret)


TOKEN_PREFIX = "SHOAL-1-"


def format_token(cluster_key: bytes, secret: bytes) -> str:
    """``SHOAL-1-<cluster public key>-<secret>``: what a manager prints for a role."""
    return f"{TOKEN_PREFIX}{key_text(cluster_key)}-{key_text(secret)}"


def parse_token(text: str) -> tuple[bytes, bytes]:
    """(the cluster's public key, the secret) of a join token; InvalidArgument otherwise."""
    cleaned = text.strip()
    if not cleaned.startswith(TOKEN_PREFIX):
        raise InvalidArgument("a join token starts with SHOAL-1- (print one on a manager with "
                              "shoal join-token worker|client)")
    parts = cleaned[len(TOKEN_PREFIX):].split("-")
    if len(parts) != 2:
        raise InvalidArgument("a join token is SHOAL-1-<cluster key>-<secret>")
    return parse_key(parts[0], "join token"), parse_key(parts[1], "join token")


def new_secret() -> bytes:
    import secrets

    return secrets.token_bytes(KEY_SIZE)


def token_keypair(secret: bytes) -> Keypair:
    """The key a token's holder enrolls with (``Keypair.derive``)."""
    return Keypair.derive(secret)


@dataclass(frozen=True, slots=True)
class CurveClient:
    """Dial with CURVE: the listener's public key, and our own keypair."""

    server_key: bytes
    keypair: Keypair


Revoked = Callable[[str], None]


class Access:
    """Who a listener admits: public key text → role. Changes take effect at once; a revoked
    key's sessions are closed by the listeners that watch it (``on_revoke``)."""

    def __init__(self, entries: Iterable[tuple[bytes, str]] = ()) -> None:
        self._roles: dict[str, str] = {}
        self.on_revoke: list[Revoked] = []
        for key, role in entries:
            self.grant(key, role)

    def grant(self, key: bytes, role: str) -> None:
        text = key_text(key)
        previous = self._roles.get(text)
        self._roles[text] = role
        if previous is not None and previous != role:
            self._revoked(text)

    def revoke(self, key: bytes) -> None:
        text = key_text(key)
        if self._roles.pop(text, None) is not None:
            self._revoked(text)

    def replace(self, fresh: dict[str, str]) -> None:
        """Make the allowlist exactly ``fresh`` (key text → role: a watch's full state),
        revoking the rest."""
        gone = [text for text, role in self._roles.items() if fresh.get(text) != role]
        self._roles = fresh
        for text in gone:
            self._revoked(text)

    def role(self, user: str) -> str | None:
        """The role of the key (in its text form) a frame was authenticated with."""
        return self._roles.get(user)

    def __len__(self) -> int:
        return len(self._roles)

    def _revoked(self, text: str) -> None:
        for hook in list(self.on_revoke):
            hook(text)


def load_keypair(path: Path, *, create: bool = True) -> Keypair:
    """The keypair kept in ``path`` (mode 0600), made on first use when ``create``."""
    try:
        return Keypair.parse(path.read_text(), str(path))
    except FileNotFoundError:
        if not create:
            raise
    keys = Keypair.generate()
    write_private(path, keys.text() + "\n")
    return keys


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, atomically (never a moment at a
    looser mode, never half written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Windows has no O_CLOEXEC (its descriptors are not inherited anyway) and needs O_BINARY
    # to write the bytes as given; its mode bits are ignored: the user's directory's ACL
    # keeps the file private there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


@dataclass(frozen=True, slots=True)
class CurveServer:
    """Listen with CURVE: our keypair, and who is admitted."""

    keypair: Keypair
    access: Access
