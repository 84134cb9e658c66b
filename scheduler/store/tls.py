"""TLS to etcd: which files a client presents and trusts, checked before anything dials.

``EtcdTLS`` names a CA bundle (what the client trusts the members' certificates by) and,
optionally, a client certificate with its key (what the members authenticate the client by,
under etcd's ``--client-cert-auth``). It is a value carried by each ``Endpoint`` that speaks
TLS, so every channel the store opens to that endpoint, first dial or reconnect, uses it.

``load_tls`` checks the files at start, each fault in one line: missing, unreadable, not PEM
of the right kind, a key that does not match its certificate. Stdlib only (``ssl``): the
checks run in the CLI before gRPC is loaded.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import InvalidArgument

# What gRPC checks a unix socket's certificate against: a unix target has no host name, and
# gRPC would otherwise check the socket's path. The embedded etcd's server certificate names it.
UNIX_SERVER_NAME = "localhost"


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """The files of one TLS client identity: the CA bundle, and a certificate and key (both or
    neither). Paths are absolute: they are read again whenever a channel is made."""

    cacert: Path
    cert: Path | None = None
    key: Path | None = None

    def read(self) -> tuple[bytes, bytes | None, bytes | None]:
        """(CA bundle, key, certificate chain) as PEM, for ``grpc.ssl_channel_credentials``."""
        return (self.cacert.read_bytes(),
                self.key.read_bytes() if self.key else None,
                self.cert.read_bytes() if self.cert else None)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting ``cacert`` and presenting the certificate if any."""
        context = ssl.create_default_context(cafile=str(self.cacert))
        if self.cert and self.key:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


def load_tls(cacert: str | Path | None, cert: str | Path | None = None,
             key: str | Path | None = None, *, names: tuple[str, str, str] = (
                 "--etcd-cacert", "--etcd-cert", "--etcd-key")) -> EtcdTLS:
    """Check the files and return them as an ``EtcdTLS``; ``InvalidArgument`` in one line
    naming the option (``names``: how the caller calls the three) and the fault otherwise."""
    ca_name, cert_name, key_name = names
    if (cert is None) != (key is None):
        given, missing = (cert_name, key_name) if cert is not None else (key_name, cert_name)
        raise InvalidArgument(f"{given} needs {missing}: a client certificate and its key go "
                              "together")
    if cacert is None:
        raise InvalidArgument(f"{cert_name}/{key_name} need {ca_name} too (the CA that signed "
                              "the etcd members' certificates)")
    ca_path = _readable(cacert, ca_name)
    try:
        ssl.create_default_context(cafile=str(ca_path))
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidArgument(f"{ca_name} {ca_path}: not a PEM CA certificate ({_why(exc)})",
                              details={"path": str(ca_path)}) from None
    if cert is None or key is None:
        return EtcdTLS(ca_path)
    cert_path, key_path = _readable(cert, cert_name), _readable(key, key_name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidArgument(
            f"{cert_name} {cert_path} / {key_name} {key_path}: not a PEM certificate and its "
            f"private key ({_why(exc)})",
            details={"cert": str(cert_path), "key": str(key_path)}) from None
    return EtcdTLS(ca_path, cert_path, key_path)


def _readable(path: str | Path, name: str) -> Path:
    resolved = Path(path).expanduser().absolute()
    if not resolved.is_file():
        fault = "is not a file" if resolved.exists() else "does not exist"
        raise InvalidArgument(f"{name} {resolved} {fault}", details={"path": str(resolved)})
    if not os.access(resolved, os.R_OK):
        raise InvalidArgument(f"{name} {resolved} is not readable",
                              details={"path": str(resolved)})
    return resolved


def _why(exc: Exception) -> str:
    """ssl's reason ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND"), on one line."""
    reason = getattr(exc, "reason", None)
    return str(reason or exc).replace("\n", " ")
