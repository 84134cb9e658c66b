"""The embedded etcd's certificates: a private CA, a server and a client certificate.

``ensure_certificates(directory)`` keeps them in a directory of their own (0700, keys 0600)
beside etcd's data, made on first use and reused afterwards; the set is made again whole when a
file is missing, does not parse, does not chain to the CA, or a certificate has less than
``RENEW_BEFORE`` left. The CA's key is deleted once the two certificates are signed: nothing
can mint another identity the etcd would accept, and a new set replaces the old one whole.

Made with Debian's ``openssl`` command (``req -x509 -CA``, OpenSSL 3): shoal has no X.509
library among its dependencies, and a handful of commands once per state directory do not
justify one. EC P-256 keys: made in milliseconds, accepted by etcd's Go TLS and by gRPC.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import InvalidArgument
from scheduler.store.errors import EtcdStartFailed
from scheduler.store.tls import UNIX_SERVER_NAME, EtcdTLS, load_tls

VALID_DAYS = 3650
RENEW_BEFORE = 30 * 86400  # seconds left below which a set is made again
# Names the server certificate holds: the unix socket's (see tls.UNIX_SERVER_NAME) and
# loopback's, for a member serving clients on loopback TCP.
SERVER_NAMES = f"DNS:{UNIX_SERVER_NAME},IP:127.0.0.1,IP:::1"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True, slots=True)
class LocalCertificates:
    """Where one set lives; the paths etcd and its clients are given."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client(self) -> EtcdTLS:
        """The client identity the etcd accepts (``--etcd-cacert/--etcd-cert/--etcd-key``)."""
        return EtcdTLS(self.ca, self.directory / "client.crt", self.directory / "client.key")

    def server_args(self) -> list[str]:
        """etcd's options for TLS with client-certificate authentication on its client URLs."""
        return ["--client-cert-auth", "--trusted-ca-file", str(self.ca),
                "--cert-file", str(self.server_cert), "--key-file", str(self.server_key)]


def ensure_certificates(directory: Path) -> LocalCertificates:
    """The set in ``directory``, made (or made again) if it is not fit for use."""
    directory = directory.absolute()
    found = LocalCertificates(directory)
    if _usable(found):
        return found
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Made beside, then swapped in: a crash half-way leaves the old set or none, never a mix.
    fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        _issue(fresh)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(directory)
        fresh.rename(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(fresh)
    return found


def _usable(found: LocalCertificates) -> bool:
    client = found.client
    assert client.cert is not None and client.key is not None
    try:
        load_tls(client.cacert, client.cert, client.key)
        load_tls(found.ca, found.server_cert, found.server_key)
    except InvalidArgument:
        return False
    # One command: both certificates chain to this CA, and all three are still valid then.
    done = subprocess.run(["openssl", "verify", "-attime", str(int(time.time()) + RENEW_BEFORE),
                           "-CAfile", str(found.ca), str(found.server_cert), str(client.cert)],
                          capture_output=True, check=False)
    return done.returncode == 0


def _issue(directory: Path) -> None:
    directory.chmod(0o700)
    ca_key = directory / "ca.key"
    _openssl(["req", "-x509", *_KEY, "-keyout", str(ca_key), "-out", str(directory / "ca.crt"),
              "-days", str(VALID_DAYS), "-subj", "/CN=shoal private etcd CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    # etcd's own gRPC gateway dials its client URL with the server certificate: it must be
    # good for client authentication too.
    for name, extensions in (
            ("server", [f"subjectAltName={SERVER_NAMES}",
                        "extendedKeyUsage=serverAuth,clientAuth"]),
            ("client", ["extendedKeyUsage=clientAuth"])):
        added = [arg for ext in ("basicConstraints=critical,CA:FALSE", *extensions)
                 for arg in ("-addext", ext)]
        _openssl(["req", "-x509", "-CA", str(directory / "ca.crt"), "-CAkey", str(ca_key),
                  *_KEY, "-keyout", str(directory / f"{name}.key"),
                  "-out", str(directory / f"{name}.crt"), "-days", str(VALID_DAYS),
                  "-subj", f"/CN=shoal etcd {name}", *added])
    ca_key.unlink()
    for key in directory.glob("*.key"):
        key.chmod(0o600)


def _openssl(args: list[str]) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise EtcdStartFailed("no openssl command on PATH to make the private etcd's "
                              "certificates; install the Debian package openssl")
    done = subprocess.run([binary, *args], capture_output=True, check=False,
                          env={**os.environ, "OPENSSL_CONF": "/dev/null"})
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise EtcdStartFailed(f"openssl {args[0]} failed making the private etcd's "
                              f"certificates: {detail[-1] if detail else done.returncode}")
