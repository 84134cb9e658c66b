"""Docker's container config to a ContainerSpec: what is translated, what is accepted only at
its empty value, and what is refused by name (pure: no daemon)."""

from __future__ import annotations

from typing import Any

import pytest

from dockerapi.create import spec_from_create
from dockerapi.errors import ApiError
from protocol.specs import (
    DeviceMapping,
    HealthCheck,
    LogOptions,
    Mount,
    PortMapping,
    Resources,
    RestartPolicy,
    Ulimit,
)

# What docker CLI 20.10 sends for `docker create busybox` with no options (trimmed of nulls).
CLI_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": [],
    "Cmd": ["true"], "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": {},
    "HostConfig": {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {
            "Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False, "VolumeDriver": "",
        "VolumesFrom": None, "CapAdd": None, "CapDrop": None, "CgroupnsMode": "",
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False,
        "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
        "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0,
        "CpusetCpus": "", "Devices": [], "KernelMemory": 0, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": None,
        "Ulimits": None, "MaskedPaths": None, "ReadonlyPaths": None},
    "NetworkingConfig": {"EndpointsConfig": {}},
}


def with_host(**host: Any) -> dict[str, Any]:
    return {**CLI_DEFAULTS, "HostConfig": {**CLI_DEFAULTS["HostConfig"], **host}}


def test_the_cli_s_defaults_give_the_plain_spec() -> None:
    spec = spec_from_create(CLI_DEFAULTS, "", "")
    assert (spec.image, spec.command, spec.entrypoint, spec.network) == \
        ("busybox", ["true"], None, "bridge")
    # A daemon without networks (a process-driver worker): Docker's default is none there.
    assert spec_from_create(CLI_DEFAULTS, "", "", "none").network == "none"


TRANSLATED: list[tuple[dict[str, Any], str, Any]] = [
    ({**CLI_DEFAULTS, "Entrypoint": ["/bin/sh", "-c"]}, "entrypoint", ["/bin/sh", "-c"]),
    ({**CLI_DEFAULTS, "Entrypoint": [""]}, "entrypoint", []),
    ({**CLI_DEFAULTS, "Cmd": "echo"}, "command", ["echo"]),
    ({**CLI_DEFAULTS, "Env": ["A=1", "constraint:zone==a", "affinity:image==redis"]}, "env",
     ["A=1"]),
    ({**CLI_DEFAULTS, "Env": ["constraint:zone==~a"]}, "constraints", ["zone==~a"]),
    ({**CLI_DEFAULTS, "Env": ["affinity:container!=db"]}, "affinities", ["container!=db"]),
    ({**CLI_DEFAULTS, "WorkingDir": "/tmp", "User": "nobody"}, "workdir", "/tmp"),
    ({**CLI_DEFAULTS, "Tty": True, "OpenStdin": True}, "stdin_open", True),
    ({**CLI_DEFAULTS, "StopSignal": "SIGINT", "StopTimeout": 3}, "stop_timeout", 3.0),
    ({**CLI_DEFAULTS, "Labels": {"a": "b"}}, "labels", {"a": "b"}),
    (with_host(Privileged=True), "privileged", True),
    (with_host(CapAdd=["NET_ADMIN"]), "cap_add", ["NET_ADMIN"]),
    (with_host(CapDrop=["ALL"]), "cap_drop", ["ALL"]),
    (with_host(Binds=["/srv:/data:ro"]), "mounts",
     [Mount(type="bind", source="/srv", target="/data", read_only=True)]),
    (with_host(Tmpfs={"/run": ""}), "mounts", [Mount(type="tmpfs", target="/run")]),
    (with_host(Tmpfs={"/run": "size=1m,mode=1770,noexec"}), "mounts",
     [Mount(type="tmpfs", target="/run", tmpfs_size=1 << 20, tmpfs_mode=0o1770)]),
    (with_host(Binds=["data:/data", "/srv:/srv:rw"]), "mounts",
     [Mount(type="volume", source="data", target="/data"),
      Mount(type="bind", source="/srv", target="/srv")]),
    (with_host(Mounts=[{"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": True,
                        "VolumeOptions": {"NoCopy": True}},
                       {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096}},
                       {"Type": "bind", "Source": "/srv", "Target": "/s",
                        "BindOptions": {"Propagation": "rprivate"}}]), "mounts",
     [Mount(type="volume", source="v", target="/v", read_only=True, no_copy=True),
      Mount(type="tmpfs", target="/t", tmpfs_size=4096),
      Mount(type="bind", source="/srv", target="/s")]),
    (with_host(PublishAllPorts=True), "publish_all", True),
    # docker-py lists its binds' targets in Config.Volumes: covered, so no anonymous volume
    ({**with_host(Binds=["data:/data"]), "Volumes": {"/data": {}}}, "mounts",
     [Mount(type="volume", source="data", target="/data")]),
    ({**CLI_DEFAULTS, "ExposedPorts": {"80/tcp": {}, "53/udp": {}}}, "expose",
     ["53/udp", "80/tcp"]),
    ({**CLI_DEFAULTS, "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000,
                                      "Timeout": 500_000_000, "Retries": 4}},
     "healthcheck", HealthCheck(test=["CMD-SHELL", "true"], interval=2.0, timeout=0.5,
                                retries=4)),
    ({**CLI_DEFAULTS, "Healthcheck": {"Test": ["NONE"]}}, "healthcheck",
     HealthCheck(test=["NONE"])),
    (with_host(NetworkMode="front"), "network", "front"),
    ({**with_host(NetworkMode="front"), "NetworkingConfig": {"EndpointsConfig": {"front": {
        "Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}},
     "network_aliases", ["web", "www"]),
    ({**with_host(NetworkMode="front"), "NetworkingConfig": {"EndpointsConfig": {"front": {
        "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}}, "ip", "10.9.0.5"),
    # Compose 1.29: the mode at default, the network named in EndpointsConfig only.
    ({**CLI_DEFAULTS, "NetworkingConfig": {"EndpointsConfig": {"app_default": {
        "Aliases": ["db"]}}}}, "network", "app_default"),
    (with_host(NetworkMode="bridge",
               PortBindings={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
     "ports", [PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1")]),
    (with_host(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3}), "restart",
     RestartPolicy(name="on-failure", max_retries=3)),
    (with_host(Memory=1 << 26, NanoCpus=1_500_000_000, CpuShares=512, PidsLimit=64),
     "resources", Resources(memory=1 << 26, millicpus=1500, cpu_shares=512, pids=64)),
    (with_host(CpuQuota=50_000, CpuPeriod=100_000), "resources", Resources(millicpus=500)),
    (with_host(NetworkMode="host"), "network", "host"),
    (with_host(NetworkMode="container:db"), "network", "container:db"),
    (with_host(Ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}]), "ulimits",
     [Ulimit(name="nofile", soft=1024, hard=2048)]),
    (with_host(AutoRemove=True), "auto_remove", True),
    (with_host(Init=True), "init", True),
    (with_host(SecurityOpt=["seccomp=unconfined"]), "seccomp", "unconfined"),
    (with_host(SecurityOpt=["no-new-privileges"]), "no_new_privileges", True),
    (with_host(SecurityOpt=["no-new-privileges:true"]), "no_new_privileges", True),
    (with_host(Devices=[{"PathOnHost": "/dev/fuse", "PathInContainer": "",
                         "CgroupPermissions": "rw"}]), "devices",
     [DeviceMapping(path_on_host="/dev/fuse", path_in_container="/dev/fuse",
                    permissions="rw")]),
    (with_host(LogConfig={"Type": "json-file", "Config": {}}), "log_options", None),
    (with_host(LogConfig={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3",
                                                          "compress": "true"}}),
     "log_options", LogOptions(max_size=10_000_000, max_file=3, compress=True)),
    (with_host(NetworkMode="bridge", ExtraHosts=["db:10.0.0.2"], Dns=["1.1.1.1"]),
     "add_hosts", ["db:10.0.0.2"]),
]


@pytest.mark.parametrize(("body", "field", "value"), TRANSLATED)
def test_translated(body: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(spec_from_create(body, "web", ""), field) == value


def test_name_and_platform() -> None:
    spec = spec_from_create(CLI_DEFAULTS, "/web", "linux/arm64")
    assert spec.name == "web" and str(spec.platform) == "linux/arm64"


REFUSED: list[tuple[dict[str, Any], str]] = [
    (with_host(CapAdd=["NET_ADMIN"], CapDrop=["net_admin"]),
     "invalid cap_add: CAP_NET_ADMIN both added and dropped"),
    (with_host(Privileged=True, SecurityOpt=['seccomp={"defaultAction": "SCMP_ACT_LOG"}']),
     "invalid seccomp: a privileged container has no seccomp filter"),
    (with_host(Devices=[{"PathOnHost": "/dev/fuse", "Major": 10}]), "HostConfig.Devices[].Major"),
    (with_host(SecurityOpt=["no-new-privileges=maybe"]), "HostConfig.SecurityOpt"),
    (with_host(VolumesFrom=["db"]), "HostConfig.VolumesFrom"),
    (with_host(Links=["db:db"]), "HostConfig.Links"),
    (with_host(PidMode="host"), "HostConfig.PidMode"),
    (with_host(Ulimits=[{"Name": "nofile"}]), "HostConfig.Ulimits"),
    (with_host(Binds=["-x:/data"]), "is not a volume name"),
    (with_host(Mounts=[{"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {
        "DriverConfig": {"Name": "nfs"}}}]), "only the local driver"),
    (with_host(Mounts=[{"Type": "bind", "Source": "/a", "Target": "/v", "BindOptions": {
        "Propagation": "rshared"}}]), "only rprivate"),
    (with_host(Binds=["/a:/b:z"]), "only ro and rw"),
    (with_host(NetworkMode="container:x", PortBindings={"80/tcp": [{"HostPort": "80"}]}),
     "--publish conflicts with it (publish the port on x)"),
    ({**CLI_DEFAULTS, "Hostname": "h", "HostConfig": {"NetworkMode": "container:x"}},
     "--hostname conflicts with it"),
    (with_host(Tmpfs={"/run": "uid=1"}), "HostConfig.Tmpfs"),
    (with_host(CpuQuota=50_000, NanoCpus=1), "Conflicting options"),
    (with_host(NetworkMode="none", PortBindings={"80/tcp": [{"HostPort": "80"}]}),
     "network none"),
    (with_host(LogConfig={"Type": "syslog", "Config": {}}), "syslog: not supported"),
    (with_host(RestartPolicy={"Name": "always", "MaximumRetryCount": 3}),
     "maximum retry count cannot be used with restart policy 'always'"),
    (with_host(LogConfig={"Type": "json-file", "Config": {"labels": "a"}}),
     "log option 'labels': not supported"),
    (with_host(LogConfig={"Type": "json-file", "Config": {"compress": "true"}}),
     "compress: cannot be true"),
    ({**CLI_DEFAULTS, "Domainname": "example.org"}, "Config.Domainname"),
    ({**CLI_DEFAULTS, "Volumes": {"/data": {}}}, "anonymous volumes are not supported"),
    ({**CLI_DEFAULTS, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1.5}},
     "Healthcheck.Interval"),
    ({**CLI_DEFAULTS, "Healthcheck": {"Test": ["CMD", "true"], "Sometimes": 1}},
     "Config.Healthcheck.Sometimes is not supported"),
    ({**CLI_DEFAULTS, "Env": "A=1"}, "Env"),
    ({**CLI_DEFAULTS, "Env": ["=x"]}, "env"),
    ({**CLI_DEFAULTS, "Image": ""}, "an image is required"),
    ({**CLI_DEFAULTS, "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}},
     "one network at create"),
    ({**with_host(NetworkMode="host"), "NetworkingConfig": {"EndpointsConfig": {"host": {
        "Aliases": ["a"]}}}}, "aliases are not supported on network host"),
    ({**with_host(NetworkMode="front"), "NetworkingConfig": {"EndpointsConfig": {"front": {
        "Links": ["db"]}}}}, "links are not supported"),
    (with_host(PortBindings={"80/tcp": [{"HostPort": "8000-8010"}]}), "ranges"),
    (with_host(Ulimits=[{"Name": "files", "Soft": 1, "Hard": 1}]), "HostConfig.Ulimits"),
    (with_host(Ulimits=[{"Name": "nofile", "Soft": 9, "Hard": 1}]), "soft limit (9) is above"),
    ("not an object", "expected a JSON object"),
]


@pytest.mark.parametrize(("body", "message"), REFUSED)
def test_refused_with_its_name(body: Any, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        spec_from_create(body, "", "")
    assert refused.value.status == 400
    assert message in refused.value.message, refused.value.message


def test_names_as_docker_allows_them() -> None:
    for bad in ("a", "-x", "a b", "é"):
        with pytest.raises(ApiError, match="Invalid container name"):
            spec_from_create(CLI_DEFAULTS, bad, "")
