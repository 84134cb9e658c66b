"""The codec: every message type round-trips; any other byte string is a ProtocolError."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import messages as m
from protocol import observed, specs
from protocol.codec import (
    MessageCodec,
    decode_error,
    decode_header,
    encode_error,
    encode_header,
)
from protocol.errors import ErrorInfo, LimitExceeded, ProtocolError
from protocol.frames import Abort, Chunk, Credit, Data, Hello, SessionOptions, Welcome
from protocol.limits import SessionLimits
from protocol.refs import ChannelRef, RefKind, wire_ref, wire_ref_id

SPEC = specs.ContainerSpec(
    image="busybox:latest",
    name="web",
    command=["sh", "-c", "echo hi"],
    env=["A=1"],
    labels={"tier": "front"},
    restart=specs.RestartPolicy(name="on-failure", max_retries=3),
    resources=specs.Resources(millicpus=500, memory=64 << 20, pids=100),
    ports=[specs.PortMapping(container_port=80, host_port=8080)],
    platform=specs.Platform(os="linux", arch="amd64"),
    constraints=["node.labels.zone==a", "~node.labels.disk==ssd"],
    affinities=["image==redis"],
)
NODE = observed.NodeInfo(id="n1", hostname="h1", labels={"zone": "a"}, images=["busybox:latest"],
                      capacity=observed.NodeResources(millicpus=2000, memory=1 << 30))

IMAGE = observed.ImageSummary(id="sha256:00", tags=["busybox:latest"], digest="sha256:01",
                           size=1 << 20, created=1.7e9, os="linux", arch="amd64")


def _ref(kind: RefKind, n: int) -> ChannelRef:
    return wire_ref(kind, n)


_KEY = "a" * 52  # a CURVE key as text
SAMPLES: list[m.Message] = [
    m.Ok(),
    m.Echo(data=b"x", reply=_ref(RefKind.SENDER, 3)),
    m.Echoed(data=b"\x00" * 10),
    m.GetVersion(reply=_ref(RefKind.SENDER, 5)),
    m.VersionInfo(version="0.1.0", protocol=1),
    m.CreateContainer(spec=SPEC, reply=_ref(RefKind.SENDER, 7)),
    m.ContainerCreated(id="c1"),
    m.StartContainer(id="c1", reply=_ref(RefKind.SENDER, 9)),
    m.StopContainer(id="c1", timeout=3.0, reply=_ref(RefKind.SENDER, 11)),
    m.KillContainer(id="c1", signal="TERM", reply=_ref(RefKind.SENDER, 13)),
    m.RestartContainer(id="c1", reply=_ref(RefKind.SENDER, 15)),
    m.RemoveContainer(id="c1", force=True, reply=_ref(RefKind.SENDER, 17)),
    m.ListContainers(all=True, reply=_ref(RefKind.SENDER, 19)),
    m.ContainerList(containers=[observed.ContainerSummary(id="c1", image="busybox")]),
    m.InspectContainer(id="c1", reply=_ref(RefKind.SENDER, 21)),
    m.ContainerInspected(info=observed.ContainerInfo(id="c1", spec=SPEC)),
    m.TopContainer(id="c1", reply=_ref(RefKind.SENDER, 63)),
    m.ContainerProcesses(titles=["PID", "CMD"], processes=[["1", "sh"]]),
    m.PauseContainer(id="c1", reply=_ref(RefKind.SENDER, 90)),
    m.UnpauseContainer(id="c1", reply=_ref(RefKind.SENDER, 91)),
    m.RenameContainer(id="c1", name="c2", reply=_ref(RefKind.SENDER, 92)),
    m.UpdateContainer(id="c1", memory=1 << 20, pids=0,
                      restart=specs.RestartPolicy(name="on-failure", max_retries=2),
                      reply=_ref(RefKind.SENDER, 93)),
    m.StatsContainer(id="c1", stream=True, reply=_ref(RefKind.SENDER, 94)),
    m.ContainerStats(id="c1", name="web", sample=observed.ResourceSample(
        time=1.5, cpu_total=10, cpu_percpu=[4, 6], memory_stats={"cache": 1},
        blkio={"io_service_bytes_recursive": [observed.BlockIoEntry(major=8, op="Read",
                                                                 value=5)]},
        networks={"eth0": observed.InterfaceCounters(rx_bytes=1 << 63)})),
    m.ContainerLogs(id="c1", follow=True, tail=10, reply=_ref(RefKind.SENDER, 23)),
    m.LogLine(stream="stdout", time=1.5, data=b"hello\n"),
    m.ExecContainer(id="c1", command=["sh"], tty=True, stdin=_ref(RefKind.BYTE_READER, 25),
                    reply=_ref(RefKind.SENDER, 27)),
    m.ExecStarted(exec_id="e1", stdout=_ref(RefKind.BYTE_READER, 29),
                  resize=_ref(RefKind.SENDER, 31)),
    m.ExecExited(exec_id="e1", exit_code=0),
    m.TerminalSize(rows=24, cols=80),
    m.AttachContainer(id="c1", reply=_ref(RefKind.SENDER, 33)),
    m.Attached(stdout=_ref(RefKind.BYTE_READER, 35)),
    m.WaitContainer(id="c1", reply=_ref(RefKind.SENDER, 37)),
    m.ContainerExited(id="c1", exit_code=137),
    m.WatchEvents(reply=_ref(RefKind.SENDER, 39)),
    m.EventMessage(event=observed.Event(type="container", action="die", id="c1")),
    m.Subscribed(stream=_ref(RefKind.RECEIVER, 61)),
    m.Join(node=NODE, commands=_ref(RefKind.SENDER, 41), reply=_ref(RefKind.SENDER, 43),
           held=[m.ContainerReport(node_id="n1", container_id="c1", generation=2,
                                   state=observed.ContainerState(status="running", pid=7))]),
    m.Joined(node_id="n1", epoch=2, heartbeat_interval=1.0, reports=_ref(RefKind.SENDER, 45),
             managers=["tcp://10.0.0.1:7375"]),
    m.Heartbeat(node_id="n1", epoch=2),
    m.NodeImages(node_id="n1", epoch=2, images=["busybox:latest", "sha256:" + "a" * 64]),
    m.ContainerReport(node_id="n1", container_id="c1", generation=1,
                      state=observed.ContainerState(status="exited", exit_code=1)),
    m.ContainerReport(node_id="n1", container_id="c2", generation=1,
                      state=observed.ContainerState(status="running", health=observed.Health(
                          status="healthy", log=[observed.HealthResult(
                              start=1.0, end=2.0, exit_code=0, output="ok\n")]))),
    m.Assign(container_id="c1", generation=3, spec=SPEC),
    m.Revoke(container_id="c1", generation=2, reason="moved to n2"),
    m.ListNodes(reply=_ref(RefKind.SENDER, 47)),
    m.NodeList(nodes=[NODE]),
    m.UpdateNode(node_id="n1", availability="drain", reply=_ref(RefKind.SENDER, 147)),
    m.RemoveNode(node_id="n1", force=True, reply=_ref(RefKind.SENDER, 149)),
    m.Managers(addresses=["tcp://10.0.0.1:7375", "tcp://10.0.0.2:7375"]),
    m.NetworkEndpoints(endpoints=[specs.OverlayEndpoint(
        network="ov", container_id="web.1", name="web.1", job="web", aliases=["www"],
        ip="10.0.0.2", mac="02:42:0a:00:00:02", vtep="192.0.2.1")]),
    m.NodeList(nodes=[NODE], usage={"n1": observed.NodeUsage(millicpus=500, containers=1)}),
    m.InspectNode(node_id="n1", reply=_ref(RefKind.SENDER, 149)),
    m.NodeInspected(info=NODE, usage=observed.NodeUsage(memory=1 << 20, containers=2),
                    containers=["web.1", "web.2"]),
    m.LabelNode(node_id="n1", add={"zone": "a"}, remove=["old"],
                reply=_ref(RefKind.SENDER, 151)),
    m.SubmitApp(app=specs.AppSpec(name="a", containers=[SPEC]), reply=_ref(RefKind.SENDER, 49)),
    m.CreateContainers(specs=[SPEC], registries=[m.RegistryOptions(username="u")],
                       reply=_ref(RefKind.SENDER, 47)),
    m.SubmitJob(spec=SPEC, replicas=3, reply=_ref(RefKind.SENDER, 51)),
    m.Submitted(ids=["c1", "c2"]),
    m.ImportImage(name="busybox:latest", data=_ref(RefKind.BYTE_READER, 53),
                  reply=_ref(RefKind.SENDER, 55)),
    m.ImageImported(images=[IMAGE], format="oci"),
    m.ListImages(reply=_ref(RefKind.SENDER, 65)),
    m.ImageList(images=[IMAGE, observed.ImageSummary(id="sha256:11")]),
    m.InspectImage(ref="busybox", reply=_ref(RefKind.SENDER, 67)),
    m.ImageInspected(info=observed.ImageInfo(
        summary=IMAGE, author="me", layers=["sha256:22"],
        config=observed.ImageRunConfig(cmd=["sh"], env=["PATH=/bin"], exposed_ports=["80/tcp"],
                                    labels={"a": "b"}, volumes=["/data"]))),
    m.RemoveImage(ref="busybox", force=True, reply=_ref(RefKind.SENDER, 69)),
    m.ImageRemoved(untagged=["busybox:latest"], deleted=["sha256:00"]),
    m.ResolveImage(ref="busybox", reply=_ref(RefKind.SENDER, 59)),
    m.ImageResolved(id="sha256:00", manifest_digest="sha256:01",
                    media_type="application/vnd.oci.image.manifest.v1+json", size=400,
                    tags=["busybox:latest"]),
    m.FetchBlob(digest="sha256:00", into=_ref(RefKind.BYTE_WRITER, 57),
                reply=_ref(RefKind.SENDER, 59)),
    m.PullImage(ref="localhost:5000/app:1", platform="linux/arm64/v8",
                registry=m.RegistryOptions(username="u", password="p", ca_pem="PEM",
                                           insecure=True),
                progress=_ref(RefKind.SENDER, 79), reply=_ref(RefKind.SENDER, 81)),
    m.ImagePulled(image=IMAGE, digest="sha256:02", downloaded=3),
    m.PushImage(ref="localhost:5000/app:1", chunk_size=1 << 20, reply=_ref(RefKind.SENDER, 83)),
    m.ImagePushed(digest="sha256:01", size=556, uploaded=2, mounted=1),
    m.TransferProgress(blob="sha256:00", action="downloading", current=10, total=20),
    m.TagImage(source="busybox", target="localhost:5000/busybox:1",
               reply=_ref(RefKind.SENDER, 85)),
    m.Enroll(key=_KEY, name="worker1", reply=_ref(RefKind.SENDER, 61)),
    m.Enrolled(role="worker", name="worker1", cluster_key=_KEY, managers=["tcp://a:7375"]),
    m.GetJoinToken(role="client", rotate=True, reply=_ref(RefKind.SENDER, 63)),
    m.JoinToken(role="client", token="SHOAL-1-" + _KEY + "-" + _KEY),
    m.ListKeys(reply=_ref(RefKind.SENDER, 65)),
    m.KeyList(keys=[m.KeyInfo(key=_KEY, role="client", name="ann@box", created=1.5)]),
    m.RevokeKey(key="ann@box", reply=_ref(RefKind.SENDER, 67)),
    m.CreateNetwork(spec=specs.NetworkSpec(name="back", subnet="10.1.0.0/24", internal=True,
                                           labels={"a": "b"}), reply=_ref(RefKind.SENDER, 71)),
    m.NetworkCreated(id="ab" * 32),
    m.ListNetworks(reply=_ref(RefKind.SENDER, 73)),
    m.NetworkList(networks=[specs.NetworkInfo(
        id="ab" * 32, spec=specs.NetworkSpec(name="bridge"), subnet="172.17.0.0/16",
        gateway="172.17.0.1", endpoints=[specs.Endpoint(
            container_id="cd" * 32, name="web", ip="172.17.0.2",
            ports=[specs.PortMapping(container_port=80, host_port=8080)])])]),
    m.InspectNetwork(name="back", reply=_ref(RefKind.SENDER, 75)),
    m.NetworkInspected(info=specs.NetworkInfo(id="ab" * 32, spec=specs.NetworkSpec(name="x"))),
    m.RemoveNetwork(name="back", reply=_ref(RefKind.SENDER, 77)),
    m.BuildImage(dockerfile="FROM busybox\nRUN true\n", tags=["app:1"],
                 build_args={"V": "1"}, target="final", no_cache=True,
                 context=_ref(RefKind.BYTE_READER, 201), reply=_ref(RefKind.SENDER, 203)),
    m.BuildOutput(text="Step 1/2 : FROM busybox\n"),
    m.BuildResult(image=IMAGE),
    m.PruneImages(all=True, reply=_ref(RefKind.SENDER, 205)),
    m.ImagesPruned(deleted=["sha256:00"], untagged=["busybox:latest"], cache_records=3,
                   reclaimed=1024),
    m.SaveImages(refs=["busybox"], format="oci", reply=_ref(RefKind.SENDER, 207)),
    m.ImageChunk(data=b"\x00" * 512),
    m.ImageHistory(ref="busybox", reply=_ref(RefKind.SENDER, 209)),
    m.ImageHistoryList(entries=[m.HistoryEntry(created=1.5, created_by="/bin/sh -c true",
                                               layer="sha256:" + "d" * 64, size=512,
                                               tags=["busybox:latest"], image_id="sha256:00"),
                                m.HistoryEntry(comment="empty")]),
    m.StatContainerPath(id="web", path="/etc/hosts", reply=_ref(RefKind.SENDER, 211)),
    m.ContainerPathStat(stat=m.PathStat(name="hosts", size=12, mode=0o100644, mtime=2.0)),
    m.GetContainerArchive(id="web", path="/etc/.", reply=_ref(RefKind.SENDER, 213)),
    m.ContainerArchive(stat=m.PathStat(name="link", size=0, mode=0o120777, mtime=0.0,
                                       link_target="/etc/hosts"),
                       data=_ref(RefKind.BYTE_READER, 215)),
    m.PutContainerArchive(id="web", path="/tmp", no_overwrite_dir_non_dir=True,
                          copy_uid_gid=True, data=_ref(RefKind.BYTE_READER, 217),
                          reply=_ref(RefKind.SENDER, 219)),
    m.ExportContainer(id="web", reply=_ref(RefKind.SENDER, 221)),
    m.GetDiskUsage(reply=_ref(RefKind.SENDER, 223)),
    m.DiskUsage(layers_size=4096,
                images=[m.ImageUsage(id="sha256:00", tags=["busybox:latest"], size=10,
                                     shared=2, containers=1)],
                containers=[m.ContainerUsage(id="c1", name="web", image="busybox",
                                             size_rw=5, size_root=15, node_id="n1")],
                volumes=[m.VolumeUsage(name="data", size=7, containers=1)],
                build_cache=[m.BuildCacheUsage(id="sha256:11", size=3)]),
    m.ConnectNetwork(name="back", container="web", ip="10.0.0.9", aliases=["cache"],
                     reply=_ref(RefKind.SENDER, 78)),
    m.DisconnectNetwork(name="back", container="web", force=True,
                        reply=_ref(RefKind.SENDER, 79)),
    m.PruneNetworks(reply=_ref(RefKind.SENDER, 80)),
    m.NetworksPruned(names=["spare"]),
    m.CreateVolume(spec=specs.VolumeSpec(name="data", labels={"k": "v"},
                                         options={"type": "tmpfs"}), node_id="n1",
                   reply=_ref(RefKind.SENDER, 78)),
    m.VolumeInspected(info=specs.VolumeInfo(spec=specs.VolumeSpec(name="data"), node_id="n1",
                                            mountpoint="/v/data/_data", users=["web"])),
    m.ListVolumes(reply=_ref(RefKind.SENDER, 79)),
    m.VolumeList(volumes=[specs.VolumeInfo(spec=specs.VolumeSpec(name="data"))]),
    m.InspectVolume(name="data", reply=_ref(RefKind.SENDER, 80)),
    m.RemoveVolume(name="data", force=True, reply=_ref(RefKind.SENDER, 81)),
    m.PruneVolumes(reply=_ref(RefKind.SENDER, 82)),
    m.VolumesPruned(names=["a", "b"], reclaimed=4096),
    m.NodeVolumes(node_id="n1", epoch=3, volumes=[
        specs.VolumeInfo(spec=specs.VolumeSpec(name="data"), node_id="n1")]),
]


def plain_codec(max_size: int = 1 << 20, *, alone: bool = False) -> MessageCodec:
    """A codec without a session; ``alone``: decoding each message type alone (the CLI's)."""
    def export(ref: ChannelRef) -> int:
        channel_id = wire_ref_id(ref)
        assert channel_id is not None
        return channel_id

    codec = MessageCodec(export, wire_ref, max_size)
    if alone:
        codec.decode_each_type_alone()
    return codec


# Every decoding test runs on both ways of decoding: one decoder of every type, or each alone.
BOTH_WAYS = pytest.mark.parametrize("alone", [False, True], ids=["union", "alone"])


def test_samples_cover_every_message_type() -> None:
    assert {type(s) for s in SAMPLES} == set(m.MESSAGE_TYPES)


def _normal(value: object) -> object:
    """A comparable form: refs become (kind, id)."""
    if isinstance(value, ChannelRef):
        return (value.ref_kind, wire_ref_id(value))
    if isinstance(value, msgspec.Struct):
        return (type(value).__name__,
                tuple(_normal(getattr(value, f)) for f in value.__struct_fields__))
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


@BOTH_WAYS
@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_message_round_trips(message: m.Message, alone: bool) -> None:
    codec = plain_codec(alone=alone)
    assert _normal(codec.decode(codec.encode(message))) == _normal(message)


@BOTH_WAYS
def test_a_newer_peers_extra_fields_are_skipped(alone: bool) -> None:
    data = msgspec.msgpack.encode({"type": "echoed", "data": b"x", "added_in_v9": [1, {"a": 2}]})
    assert plain_codec(alone=alone).decode(data) == m.Echoed(data=b"x")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"type": "container.teleport", "id": "c1"}, "Invalid value 'container.teleport'"),
        ({"type": "echo", "data": b""}, "missing required field `reply`"),
        ({"type": "echo", "reply": 5}, "expected a SenderRef"),
        ({"type": "echo", "reply": msgspec.msgpack.Ext(2, (7).to_bytes(8, "big"))},
         "got a RECEIVER ref"),
        ({"type": "echo", "reply": msgspec.msgpack.Ext(9, (7).to_bytes(8, "big"))},
         "unknown extension type 9"),
        ({"type": "echo", "reply": msgspec.msgpack.Ext(1, b"\x01")}, "of 1 bytes"),
        ({"type": "echo", "reply": msgspec.msgpack.Ext(1, (0).to_bytes(8, "big"))},
         "out of range"),
        ({"type": "container.kill", "id": "x" * 300, "reply": msgspec.msgpack.Ext(1, b"\0" * 7 +
                                                                                   b"\1")},
         "length <= 255"),
        ({"type": "container.create", "spec": {"image": "b", "env": ["x"] * 5000},
          "reply": msgspec.msgpack.Ext(1, (3).to_bytes(8, "big"))}, "length <= 4096"),
    ],
)
@BOTH_WAYS
def test_invalid_messages_are_protocol_errors(raw: object, fragment: str, alone: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        plain_codec(alone=alone).decode(msgspec.msgpack.encode(raw))
    assert fragment in str(info.value)


@BOTH_WAYS
def test_deep_nesting_is_refused_as_a_limit(alone: bool) -> None:
    deep = b"\x82\xa4type\xa2ok\xa1x" + b"\x91" * 100_000 + b"\x01"
    with pytest.raises(LimitExceeded, match="nested too deeply"):
        plain_codec(alone=alone).decode(deep)


@BOTH_WAYS
def test_oversized_messages_are_refused_both_ways(alone: bool) -> None:
    codec = plain_codec(max_size=1024, alone=alone)
    with pytest.raises(LimitExceeded, match="the limit is 1024"):
        codec.encode(m.Echoed(data=b"x" * 2000))
    with pytest.raises(LimitExceeded):
        codec.decode(msgspec.msgpack.encode(m.Echoed(data=b"x" * 2000)))


def test_only_channel_refs_may_travel_as_extensions() -> None:
    codec = plain_codec()
    with pytest.raises(TypeError, match="cannot send a object"):
        codec.encode(m.Echo(data=b"", reply=object()))  # type: ignore[arg-type]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_decode_to_a_message_or_a_protocol_error(data: bytes) -> None:
    codec = plain_codec()
    with contextlib.suppress(ProtocolError):
        assert isinstance(codec.decode(data), m.Message)
    for decode in (decode_header, decode_error):
        with contextlib.suppress(ProtocolError):
            decode(data)


ENCODED = [plain_codec().encode(s) for s in SAMPLES]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(ENCODED), st.data())
def test_mutated_messages_decode_or_fail_typed(valid: bytes, data: st.DataObject) -> None:
    buf = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del buf[pos:pos + data.draw(st.integers(1, 8))]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            buf[pos:pos] = buf[pos:pos + data.draw(st.integers(1, 16))]
    with contextlib.suppress(ProtocolError):
        assert isinstance(plain_codec().decode(bytes(buf)), m.Message)
    assert _outcome(plain_codec(alone=True), bytes(buf)) == _outcome(plain_codec(), bytes(buf))


def _outcome(codec: MessageCodec, data: bytes) -> object:
    """What decoding ``data`` gives: the message (comparable), or that it was refused."""
    try:
        return _normal(codec.decode(data))
    except ProtocolError:
        return ProtocolError


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512))
def test_each_type_alone_decodes_as_the_union_does(data: bytes) -> None:
    assert _outcome(plain_codec(alone=True), data) == _outcome(plain_codec(), data)


def test_each_type_alone_builds_a_decoder_per_type_met() -> None:
    codec = plain_codec(alone=True)
    for message in (m.Ok(), m.Echoed(data=b"x"), m.Ok()):
        assert codec.decode(codec.encode(message)) == message
    assert sorted(codec._by_type or {}) == ["echoed", "ok"]
    assert codec._decoder is None  # the decoder of every type was never built


HEADERS = [
    Hello(magic="shoal", versions=[1], options=SessionOptions(name="a")),
    Welcome(version=1, options=SessionOptions(limits=SessionLimits(window=4096))),
    Data(channel=3, last=True),
    Chunk(channel=4),
    Credit(channel=5, amount=1024),
    Abort(channel=6),
]


@pytest.mark.parametrize("header", HEADERS, ids=lambda h: type(h).__name__)
def test_headers_round_trip(header: object) -> None:
    assert decode_header(encode_header(header)) == header  # type: ignore[arg-type]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from([encode_header(h) for h in HEADERS]), st.binary(max_size=4),
       st.integers(0, 40))
def test_mutated_headers_decode_or_fail_typed(valid: bytes, junk: bytes, cut: int) -> None:
    for candidate in (valid[:cut] + junk, junk + valid, valid[cut:]):
        with contextlib.suppress(ProtocolError):
            decode_header(candidate)


@pytest.mark.parametrize(
    "raw",
    [[2, 0], [2, -1], [2, 1 << 60], [4, 3, 0], [99], [], "hello", [0, "shoal", [1] * 100, {}]],
)
def test_invalid_headers_are_protocol_errors(raw: object) -> None:
    with pytest.raises(ProtocolError):
        decode_header(msgspec.msgpack.encode(raw))


def test_error_bodies_round_trip() -> None:
    info = ErrorInfo(code="request.not_found", message="no such container", details={"id": "c"})
    assert decode_error(encode_error(info)) == info
