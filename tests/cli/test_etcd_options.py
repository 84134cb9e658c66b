"""``shoal scheduler --etcd URLS --etcd-cacert/--etcd-cert/--etcd-key``: a scheduler leads on an
external three-member etcd over https with client certificates and keeps its leadership when
the member it uses is killed; every bad combination or file is refused at start in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from aetcd import rpc
from click.testing import CliRunner

from cli.dev import DevCluster
from cli.scheduler_daemon import scheduler_command
from scheduler.store import EmbeddedEtcd, Endpoint, EtcdClient, Layout, Lease
from scheduler.store.certificates import LocalCertificates, ensure_certificates
from tests.helpers.store_fixtures import Runner, kill_9, outlast_a_ttl


def test_a_scheduler_on_https_etcd_survives_the_loss_of_its_member(
        run: Runner[None], three_members_https: list[EmbeddedEtcd], layout: Layout,
        tmp_path: Path) -> None:
    members = three_members_https
    tls = members[0].endpoint.tls
    assert tls is not None
    urls = ",".join(m.endpoint.url for m in members)
    assert urls.startswith("https://127.0.0.1:")
    procs = DevCluster(tmp_path, "", workers=0)  # its process plumbing, not its start()

    async def leader_key(client: EtcdClient) -> tuple[int, int]:
        reply = await client.call("kv", "Range", rpc.RangeRequest(key=layout.leader_key),
                                  what="test")
        assert reply.kvs, "no leader"
        return int(reply.kvs[0].create_revision), int(reply.kvs[0].lease)

    async def body() -> None:
        try:
            scheduler = await procs.launch("s1", [
                "scheduler", "--etcd", urls, "--etcd-cacert", str(tls.cacert),
                "--etcd-cert", str(tls.cert), "--etcd-key", str(tls.key),
                "--listen", "tcp://127.0.0.1:0", "--name", "s1", "--store-root", layout.root,
                "--state-dir", str(tmp_path / "s1"), "--lease-ttl", "3"])
            assert procs.ready["s1"]["ROLE"] == "leader"
            # Watched from the members the scheduler does not use first.
            others: list[Endpoint] = [m.endpoint for m in members[1:]]
            async with EtcdClient(others, timeout=5.0) as client:
                before = await leader_key(client)
                # Granted before the kill: a grant sent to a raft leader as it dies would wait
                # out etcd's own request timeout.
                clock = await Lease.grant(client, 3)
                kill_9(members[0].pid)  # the scheduler's first endpoint: the one it uses
                await outlast_a_ttl(clock)  # its lease would have expired unless renewed
                await clock.revoke()
                assert await leader_key(client) == before  # the same leadership, renewed
            assert scheduler.poll() is None
            log = (tmp_path / "s1.log").read_text()
            assert "failed over" in log
        finally:
            await procs.stop()

    run(body, 60.0)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> LocalCertificates:
    return ensure_certificates(tmp_path_factory.mktemp("etcd-tls") / "tls")


def _refusal(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(scheduler_command, args, env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize(("flags", "says"), [
    (["--etcd", "https://10.0.0.1:2379"], "give --etcd-cacert"),
    (["--etcd", "10.0.0.1:2379", "--etcd-cert", "{client_cert}"],
     "--etcd-cert needs --etcd-key"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cacert", "{ca}", "--etcd-key",
      "{client_key}"], "--etcd-key needs --etcd-cert"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cert", "{client_cert}", "--etcd-key",
      "{client_key}"], "need --etcd-cacert too"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cacert", "{missing}"], "does not exist"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cacert", "{dir}"], "is not a file"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cacert", "{client_key}"],
     "not a PEM CA certificate"),
    (["--etcd", "https://10.0.0.1:2379", "--etcd-cacert", "{ca}", "--etcd-cert",
      "{client_cert}", "--etcd-key", "{server_key}"], "not a PEM certificate and its private key"),
    (["--etcd", "http://10.0.0.1:2379", "--etcd-cacert", "{ca}"], "is plain text"),
    (["--etcd-cacert", "{ca}"], "given without --etcd"),
])
def test_bad_etcd_flags_are_refused_in_one_line(certificates: LocalCertificates,
                                                flags: list[str], says: str) -> None:
    client = certificates.client
    files = {"ca": certificates.ca, "client_cert": client.cert, "client_key": client.key,
             "server_key": certificates.server_key, "dir": certificates.directory,
             "missing": certificates.directory / "nowhere.pem"}
    args = [flag.format(**files) for flag in flags]
    assert says in _refusal(args)


def test_the_tls_files_come_from_the_environment_too(certificates: LocalCertificates) -> None:
    said = _refusal(["--etcd", "https://10.0.0.1:2379"],
                    env={"SHOAL_ETCD_CACERT": str(certificates.ca),
                         "SHOAL_ETCD_CERT": str(certificates.client.cert)})
    assert "--etcd-cert needs --etcd-key" in said  # both read: only the key is missing
