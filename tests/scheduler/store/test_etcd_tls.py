"""The embedded etcd admits clients by certificate only: plain text and TLS without a client
certificate are refused, the certificate it made is accepted; its certificates are private
(0700 directory, 0600 keys, no CA key left) and reused across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from aetcd import rpc

from protocol.errors import Unavailable
from scheduler.store import EmbeddedEtcd, Endpoint, EtcdClient, EtcdTLS
from scheduler.store.certificates import ensure_certificates
from tests.helpers.store_fixtures import Runner


async def _range(endpoint: Endpoint) -> int:
    async with EtcdClient([endpoint], timeout=1.5) as client:
        reply = await client.call("kv", "Range", rpc.RangeRequest(key=b"/tls-probe"),
                                  what="probe")
        return int(reply.header.revision)


def test_clients_without_the_certificate_are_refused(run: Runner[None],
                                                     etcd: EmbeddedEtcd) -> None:
    served = etcd.endpoint
    assert served.tls is not None and served.url.startswith("unixs://")

    async def body() -> None:
        assert await _range(served) > 0  # the identity it made is accepted
        plain = Endpoint(socket=served.socket)
        no_cert = Endpoint(socket=served.socket, tls=EtcdTLS(served.tls.cacert))
        for refused in (plain, no_cert):
            with pytest.raises(Unavailable):
                await _range(refused)

    run(body)


def test_certificates_are_private_and_reused(tmp_path: Path) -> None:
    made = ensure_certificates(tmp_path / "tls")
    assert stat.S_IMODE(made.directory.stat().st_mode) == 0o700
    client = made.client
    assert client.key is not None and client.cert is not None
    for key in (made.server_key, client.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (made.directory / "ca.key").exists()  # nothing can mint another identity
    ca = made.ca.read_bytes()
    assert ensure_certificates(made.directory).ca.read_bytes() == ca  # reused
    client.key.unlink()  # a set missing a file is made again, whole
    assert ensure_certificates(made.directory).ca.read_bytes() != ca
    assert client.key.exists()
    ca = made.ca.read_bytes()
    other = ensure_certificates(tmp_path / "other").client  # signed by another CA
    assert other.cert is not None and other.key is not None
    client.cert.write_bytes(other.cert.read_bytes())
    client.key.write_bytes(other.key.read_bytes())
    assert ensure_certificates(made.directory).ca.read_bytes() != ca


def test_a_restarted_etcd_keeps_its_certificates(run: Runner[None],
                                                 private_etcd: EmbeddedEtcd) -> None:
    before = private_etcd.endpoint
    assert before.tls is not None
    ca = before.tls.cacert.read_bytes()
    private_etcd.stop()
    private_etcd.start()
    assert private_etcd.endpoint == before
    assert before.tls.cacert.read_bytes() == ca
    run(lambda: _range(before))
