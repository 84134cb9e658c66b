"""A private Docker registry (Debian's ``docker-registry``, distribution 2.8) on loopback, for
the registry tests and ``python -m bench images``.

It listens on ``127.0.0.1:0`` and its log line ``listening on 127.0.0.1:PORT`` says which port
it got: no port is guessed. With ``tls`` it serves a certificate signed by a CA made here
(``ca_pem``); with ``users`` it checks htpasswd (bcrypt, made with apache2-utils' ``htpasswd``)
basic auth. This lives in bench/ because the benchmarks may not import tests/; the tests import
it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "docker-registry"
READY_TIMEOUT = 30.0
_LISTENING = re.compile(r'msg="listening on (127\.0\.0\.1:\d+)')


@dataclass(frozen=True, slots=True)
class RunningRegistry:
    address: str  # 127.0.0.1:PORT
    root: Path  # its storage
    ca_pem: str  # the CA that signed its certificate; empty without TLS
    ca_file: Path | None
    log: Path


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key) files."""
    # The CA's certificate alone in a directory of its own: skopeo's --cert-dir takes every
    # *.key there for a client key.
    (directory / "ca").mkdir(parents=True, exist_ok=True)
    ca = directory / "ca" / "ca.crt"
    ca_key, key, csr, cert = (directory / n for n in
                              ("ca.key", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
              "-subj", "/CN=shoal test registry CA"])
    _openssl(["req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"])
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "extendedKeyUsage=serverAuth\n")
    _openssl(["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
              "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)])
    return ca, cert, key


def _openssl(args: list[str]) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _htpasswd(path: Path, users: dict[str, str]) -> None:
    lines = []
    for user, password in users.items():
        done = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                              capture_output=True, text=True, timeout=60)
        lines.append(done.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


def available() -> str | None:
    """What is missing to run a registry here, or None."""
    for tool in (REGISTRY, "openssl", "htpasswd"):
        if shutil.which(tool) is None:
            return f"{tool} (deploy/setup.sh installs it)"
    return None


@contextlib.contextmanager
def registry(work: Path, *, tls: bool = False,
             users: dict[str, str] | None = None) -> Iterator[RunningRegistry]:
    """Run a registry with its storage and config under ``work``; stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    storage = work / "storage"
    config = [
        "version: 0.1", "log:", "  level: info", "storage:", "  delete:", "    enabled: true",
        "  filesystem:", f"    rootdirectory: {storage}", "http:", "  addr: 127.0.0.1:0",
        "  secret: shoal-test-registry",
    ]
    ca_pem, ca_file = "", None
    if tls:
        ca_file, cert, key = make_certificates(work / "certs")
        ca_pem = ca_file.read_text()
        config += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
    if users:
        _htpasswd(work / "htpasswd", users)
        config += ["auth:", "  htpasswd:", "    realm: shoal-test",
                   f"    path: {work / 'htpasswd'}"]
    (work / "config.yml").write_text("\n".join(config) + "\n")
    log = work / "registry.log"
    process = subprocess.Popen([REGISTRY, "serve", str(work / "config.yml")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    found = threading.Event()
    address: list[str] = []

    def drain() -> None:
        # Keeps reading to the end (into the log file), so the registry never blocks on a
        # full pipe; the first "listening on" line gives the port.
        assert process.stderr is not None
        with log.open("w") as out:
            for line in process.stderr:
                out.write(line)
                out.flush()
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    address.append(match.group(1))
                    found.set()
        found.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not found.wait(READY_TIMEOUT) or not address:
            raise RuntimeError(f"{REGISTRY} did not start: {log.read_text()[-2000:]}")
        yield RunningRegistry(address[0], storage, ca_pem, ca_file, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
