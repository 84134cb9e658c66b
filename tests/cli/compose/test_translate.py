"""Services to ContainerSpecs: what each honoured key becomes, what is refused (with file,
line, path and reason, all at once), and what ``up`` decides from the labels it finds."""

from __future__ import annotations

import pytest

from cli.compose.converge import plan_service
from cli.compose.errors import ComposeError
from cli.compose.loader import start_order
from cli.compose.project_files import ProjectFile, project_files
from cli.compose.translate import (
    HASH_LABEL,
    NUMBER_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    check_project,
    network_specs,
    service_specs,
    volume_specs,
)
from protocol.observed import ContainerState, ContainerSummary
from protocol.specs import (
    DeviceMapping,
    HealthCheck,
    LogOptions,
    Mount,
    PortMapping,
    RestartPolicy,
    Ulimit,
)
from tests.helpers.compose_files import PROJECT_DIR, load_texts

APP = """\
    name: shop
    services:
      web:
        image: busybox
        command: httpd -f -p 8000
        entrypoint: [/bin/sh, -c]
        environment: {A: "1"}
        working_dir: /srv
        user: "1000:1000"
        hostname: web
        labels: {tier: front}
        ports: ["127.0.0.1:8080:8000", "9000/udp"]
        volumes: ["./site:/srv:ro"]
        tmpfs: /tmp
        dns: 9.9.9.9
        extra_hosts: ["db:10.0.0.2"]
        init: true
        stop_signal: SIGINT
        stop_grace_period: 1m30s
        restart: on-failure:3
        platform: linux/amd64
        deploy:
          replicas: 2
          resources: {limits: {cpus: "0.5", memory: 64m, pids: 100}}
          placement:
            constraints: ["node.labels.zone == a"]
            preferences: [{spread: node.labels.rack}]
            max_replicas_per_node: 1
        depends_on: [db]
      db:
        image: busybox
        networks: [back]
        deploy: {restart_policy: {condition: any}}
    networks:
      back: {internal: true, ipam: {config: [{subnet: 10.9.0.0/24}]}}
    """


def test_every_honoured_key_reaches_the_spec() -> None:
    project = load_texts({"compose.yaml": APP})
    check_project(project, ["web", "db"])
    first, second = service_specs(project, project.services["web"])
    assert (first.name, second.name) == ("shop-web-1", "shop-web-2")
    assert first.command == ["httpd", "-f", "-p", "8000"]
    assert first.entrypoint == ["/bin/sh", "-c"]
    assert (first.env, first.workdir, first.user, first.hostname) == \
        (["A=1"], "/srv", "1000:1000", "web")
    assert first.ports == [PortMapping(container_port=8000, host_port=8080, host_ip="127.0.0.1"),
                           PortMapping(container_port=9000, protocol="udp")]
    assert first.mounts == [Mount(type="bind", source=f"{PROJECT_DIR}/site", target="/srv",
                                  read_only=True), Mount(type="tmpfs", target="/tmp")]
    assert (first.dns, first.add_hosts, first.init, first.stop_signal, first.stop_timeout) == \
        (["9.9.9.9"], ["db:10.0.0.2"], True, "SIGINT", 90.0)
    assert first.restart == RestartPolicy(name="on-failure", max_retries=3)
    assert (first.resources.millicpus, first.resources.memory, first.resources.pids) == \
        (500, 64 << 20, 100)
    assert (first.constraints, first.preferences, first.max_per_node) == \
        (["node.labels.zone==a"], ["spread=node.labels.rack"], 1)
    assert first.network == "shop_default" and str(first.platform) == "linux/amd64"
    assert {k: first.labels[k] for k in (PROJECT_LABEL, SERVICE_LABEL, NUMBER_LABEL, "tier")} \
        == {PROJECT_LABEL: "shop", SERVICE_LABEL: "web", NUMBER_LABEL: "1", "tier": "front"}
    [db] = service_specs(project, project.services["db"])
    assert (db.network, db.restart.name) == ("shop_back", "always")
    networks = network_specs(project, ["web", "db"])
    assert sorted(networks) == ["shop_back", "shop_default"]
    back = networks["shop_back"]
    assert back is not None and (back.internal, back.subnet) == (True, "10.9.0.0/24")


def test_the_config_hash_changes_with_the_service_and_not_with_its_scale() -> None:
    project = load_texts({"compose.yaml": APP})
    edited = load_texts({"compose.yaml": APP.replace("A: \"1\"", "A: \"2\"")})
    scaled = load_texts({"compose.yaml": APP.replace("replicas: 2", "replicas: 5")})
    web = project.services["web"].config_hash
    assert edited.services["web"].config_hash != web
    assert scaled.services["web"].config_hash == web
    assert edited.services["db"].config_hash == project.services["db"].config_hash


def test_everything_shoal_cannot_honour_is_refused_at_once() -> None:
    files = {"compose.yaml": """\
        services:
          web:
            image: busybox
            build: {context: ., network: host}
            healthcheck: {test: [BOGUS, "true"], interval: 5 minutes}
            ulimits: {nofile: {soft: 2048, hard: 1024}, files: 1}
            read_only: true
            networks:
              front: {aliases: [www]}
            volumes: [data:/data, /anonymous, "/run:/run:z"]
            depends_on:
              db: {condition: service_healthy}
          db:
            image: busybox
            container_name: the-db
            deploy: {replicas: 2, endpoint_mode: vip}
            logging: {driver: syslog}
        networks:
          front: {driver: macvlan}
        volumes:
          data: {driver: nfs}
        """}
    project = load_texts(files)
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["db", "web"])
    assert str(caught.value).splitlines() == [
        "compose.yaml:4: services.web.build.network: shoal cannot honour this",
        "compose.yaml:5: services.web.healthcheck.test: 'BOGUS': expected NONE, CMD or "
        "CMD-SHELL first",
        "compose.yaml:5: services.web.healthcheck.interval: invalid duration '5 minutes': "
        "expected numbers with units (ns, us, ms, s, m, h), as in 30s or 1m30s",
        "compose.yaml:6: services.web.ulimits.files: 'files': not a limit shoal knows (as, "
        "core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, "
        "rttime, sigpending, stack)",
        "compose.yaml:6: services.web.ulimits.nofile: the soft limit (2048) is above the hard "
        "one (1024)",
        "compose.yaml:7: services.web.read_only: shoal cannot honour this",
        "compose.yaml:10: services.web.volumes[1]: an anonymous volume: not supported yet "
        "(name it, and declare it under the top-level volumes)",
        "compose.yaml:10: services.web.volumes[2].bind: not supported yet: bind "
        "propagation, SELinux labels and create_host_path",
        "compose.yaml:15: services.db.container_name: names one container, but the service "
        "has 2 replicas",
        "compose.yaml:16: services.db.deploy.endpoint_mode: not supported: shoal's "
        "resolver answers a service's name with every replica's address (dnsrr); it has no "
        "virtual IPs",
        "compose.yaml:17: services.db.logging.driver: syslog: not supported: the worker "
        "keeps the logs (json-file only)",
        "compose.yaml:19: networks.front.driver: macvlan: not supported: shoal's networks "
        "are bridges",
        "compose.yaml:21: volumes.data.driver: nfs: not supported: shoal's volumes are "
        "local",
    ]


def _container(name: str, number: int, config_hash: str, status: str = "running",
               created: float = 1.0) -> ContainerSummary:
    return ContainerSummary(id=f"id-{name}", name=name, image="busybox", created_at=created,
                            state=ContainerState(status=status),  # type: ignore[arg-type]
                            labels={NUMBER_LABEL: str(number), HASH_LABEL: config_hash})


def test_up_keeps_the_unchanged_and_recreates_the_changed() -> None:
    project = load_texts({"compose.yaml": APP})
    specs = service_specs(project, project.services["web"])
    same = specs[0].labels[HASH_LABEL]
    plan = plan_service(specs, [_container("shop-web-1", 1, same),
                                _container("shop-web-2", 2, same, status="exited")])
    assert [(a.kind, a.name) for a in plan] == [("keep", "shop-web-1"), ("start", "shop-web-2")]
    plan = plan_service(specs, [_container("shop-web-1", 1, "old"),
                                _container("shop-web-3", 3, same)])
    assert [(a.kind, a.name) for a in plan] == [
        ("remove", "shop-web-3"), ("recreate", "shop-web-1"), ("create", "shop-web-2")]
    plan = plan_service(specs[:1], [_container("shop-web-1", 1, same)], force_recreate=True)
    assert [a.kind for a in plan] == ["recreate"]


def test_nested_keys_are_refused_too_and_ipv4_address_is_honoured() -> None:
    files = {"compose.yaml": """\
        services:
          web:
            image: busybox
            tmpfs: ["/run:size=1m,uid=5"]
            volumes:
              - {type: bind, source: /a, target: /a, bind: {propagation: shared}}
              - {type: tmpfs, target: /scratch}
            networks:
              front: {ipv4_address: 10.7.0.5, mac_address: "02:42:ac:11:00:02"}
            oom_score_adj: 100
            deploy: {resources: {limits: {cpus: "1"}}}
        networks:
          front:
            driver_opts: {mtu: "1400"}
            ipam: {config: [{subnet: 10.7.0.0/24}, {subnet: 10.8.0.0/24}]}
        """}
    project = load_texts(files)
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["web"])
    assert str(caught.value).splitlines() == [
        "compose.yaml:4: services.web.tmpfs[0]: tmpfs option 'uid=5': expected size=BYTES or "
        "mode=OCTAL",
        "compose.yaml:6: services.web.volumes[0].bind: not supported yet: bind propagation, "
        "SELinux labels and create_host_path",
        "compose.yaml:9: services.web.networks.front.mac_address: shoal cannot honour this",
        "compose.yaml:10: services.web.oom_score_adj: shoal cannot honour this",
        "compose.yaml:14: networks.front.driver_opts: shoal cannot honour this",
        "compose.yaml:15: networks.front.ipam.config[1]: not supported yet: one subnet per "
        "network",
    ]
    fixed = load_texts({"compose.yaml": files["compose.yaml"]
                        .replace(",uid=5", "")
                        .replace(", bind: {propagation: shared}", "")
                        .replace(', mac_address: "02:42:ac:11:00:02"', "")
                        .replace("oom_score_adj: 100", "init: false")
                        .replace("driver_opts: {mtu: \"1400\"}", "internal: false")
                        .replace(", {subnet: 10.8.0.0/24}", "")})
    check_project(fixed, ["web"])
    [spec] = service_specs(fixed, fixed.services["web"])
    assert (spec.ip, spec.network) == ("10.7.0.5", "app_front")
    assert [(m.type, m.target, m.tmpfs_size) for m in spec.mounts] == \
        [("bind", "/a", 0), ("tmpfs", "/scratch", 0), ("tmpfs", "/run", 1 << 20)]


def test_an_optional_dependency_may_be_missing() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web: {image: x, depends_on: {gone: {condition: service_started, required: false}}}
        """})
    check_project(project, ["web"])


def test_scale_overrides_the_replicas_and_names_a_known_service() -> None:
    from cli.compose.lifecycle import _scaled

    project = load_texts({"compose.yaml": APP})
    scaled = _scaled(project, {"db": "3"})
    assert [s.name for s in service_specs(scaled, scaled.services["db"])] == \
        ["shop-db-1", "shop-db-2", "shop-db-3"]
    assert scaled.services["db"].config_hash == project.services["db"].config_hash
    with pytest.raises(ComposeError, match="--scale: no such service 'nope'"):
        _scaled(project, {"nope": "1"})


def test_healthchecks_volumes_and_names_reach_the_spec() -> None:
    project = load_texts({"compose.yaml": """\
        name: shop
        services:
          web:
            image: busybox
            hostname: www
            expose: ["8000", "9000/udp"]
            links: ["api:backend"]
            healthcheck:
              test: wget -qO- http://localhost:8000/
              interval: 2s
              timeout: 1s
              retries: 5
              start_period: 1m
              start_interval: 500ms
            networks:
              front: {aliases: [site]}
            volumes:
              - data:/data:ro
              - {type: volume, source: cache, target: /cache, volume: {nocopy: true}}
              - {type: tmpfs, target: /scratch, tmpfs: {size: 1m, mode: 0700}}
          api:
            image: busybox
            healthcheck: {disable: true}
            networks: [front]
            depends_on:
              once: {condition: service_completed_successfully}
          once: {image: busybox, network_mode: none}
        networks:
          front: {}
        volumes:
          data: {driver_opts: {type: tmpfs, device: tmpfs}, labels: {keep: "yes"}}
          cache: {external: true, name: shared-cache}
        """})
    check_project(project, ["once", "api", "web"])
    [web] = service_specs(project, project.services["web"])
    assert web.healthcheck == HealthCheck(
        test=["CMD-SHELL", "wget -qO- http://localhost:8000/"], interval=2.0, timeout=1.0,
        retries=5, start_period=60.0, start_interval=0.5)
    assert web.network_aliases == ["web", "www", "site"] and web.affinities == []
    assert web.expose == ["8000", "9000/udp"]
    assert web.mounts == [
        Mount(type="volume", source="shop_data", target="/data", read_only=True),
        Mount(type="volume", source="shared-cache", target="/cache", no_copy=True),
        Mount(type="tmpfs", target="/scratch", tmpfs_size=1 << 20, tmpfs_mode=0o700)]
    [api] = service_specs(project, project.services["api"], cluster=True)
    assert api.healthcheck == HealthCheck(test=["NONE"])
    # A link's alias names its target; through a scheduler the link co-locates.
    assert api.network_aliases == ["api", "backend"]
    [clustered] = service_specs(project, project.services["web"], cluster=True)
    assert clustered.affinities == ["container==shop-api-1"]
    assert start_order(project, ["web"], with_dependencies=True) == ["once", "api", "web"]
    volumes = volume_specs(project, ["web"])
    assert volumes["shared-cache"] is None
    data = volumes["shop_data"]
    assert data is not None and data.options == {"type": "tmpfs", "device": "tmpfs"}
    assert data.labels == {"keep": "yes", PROJECT_LABEL: "shop",
                           "com.docker.compose.volume": "data"}
    overlay = network_specs(project, ["web"], overlay=True)["shop_front"]
    bridge = network_specs(project, ["web"])["shop_front"]
    assert overlay is not None and (overlay.driver, overlay.attachable) == ("overlay", True)
    assert bridge is not None and (bridge.driver, bridge.attachable) == ("bridge", False)


def test_volumes_from_carries_the_sources_mounts_and_co_locates() -> None:
    project = load_texts({"compose.yaml": """\
        name: shop
        services:
          data:
            image: busybox
            volumes:
              - store:/store
              - ./conf:/conf:ro
              - {type: tmpfs, target: /scratch}
          reader:
            image: busybox
            volumes_from: ["data:ro"]
          writer:
            image: busybox
            volumes: ["./own:/conf"]
            volumes_from: [data]
        volumes:
          store: {}
        """})
    check_project(project, ["data", "reader", "writer"])
    [reader] = service_specs(project, project.services["reader"])
    assert reader.mounts == [
        Mount(type="volume", source="shop_store", target="/store", read_only=True),
        Mount(type="bind", source=f"{PROJECT_DIR}/conf", target="/conf", read_only=True)]
    assert reader.volumes_from == []  # a worker runs it beside its source anyway
    # Each mount's own mode without ro|rw; the service's own mount of a target wins.
    [writer] = service_specs(project, project.services["writer"], cluster=True)
    assert writer.mounts == [
        Mount(type="bind", source=f"{PROJECT_DIR}/own", target="/conf"),
        Mount(type="volume", source="shop_store", target="/store")]
    # Through a scheduler the source's first container is the one it is placed beside.
    assert writer.volumes_from == ["shop-data-1"]
    # A source starts first, as a dependency.
    assert start_order(project, ["writer"], with_dependencies=True) == ["data", "writer"]


@pytest.mark.parametrize(("entry", "message"), [
    ("container:other", "services.web.volumes_from[0]: not supported yet: volumes from a "
                        "container outside the project (name one of its services)"),
    ("data:rx", "services.web.volumes_from[0]: 'rx': expected ro or rw"),
])
def test_volumes_from_that_cannot_be_honoured_is_refused(entry: str, message: str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          data: {{image: busybox}}
          web:
            image: busybox
            volumes_from: ["{entry}"]
        """})
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["data", "web"])
    assert [line.split(": ", 1)[1] for line in str(caught.value).splitlines()] == [message]


def test_ulimits_reach_the_spec() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web:
            image: busybox
            ulimits:
              nproc: 65535
              nofile: {soft: 20000, hard: 40000}
              core: -1
        """})
    check_project(project, ["web"])
    [web] = service_specs(project, project.services["web"])
    assert web.ulimits == [Ulimit(name="nproc", soft=65535, hard=65535),
                           Ulimit(name="nofile", soft=20000, hard=40000),
                           Ulimit(name="core", soft=-1, hard=-1)]


def test_devices_and_no_new_privileges_reach_the_spec() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web:
            image: busybox
            devices: ["/dev/fuse", "/dev/null:/dev/nothing:r",
                      {source: /dev/zero, target: /dev/z, permissions: rw}]
            security_opt: ["no-new-privileges:true"]
          odd:
            image: busybox
            devices: [fuse, "/dev/a:/dev/b:/dev/c"]
            security_opt: ["no-new-privileges=maybe"]
        """})
    check_project(project, ["web"])
    [web] = service_specs(project, project.services["web"])
    assert web.devices == [
        DeviceMapping(path_on_host="/dev/fuse", path_in_container="/dev/fuse"),
        DeviceMapping(path_on_host="/dev/null", path_in_container="/dev/nothing",
                      permissions="r"),
        DeviceMapping(path_on_host="/dev/zero", path_in_container="/dev/z", permissions="rw")]
    assert web.no_new_privileges
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["odd"])
    assert sorted(line.split(": ", 1)[1] for line in str(caught.value).splitlines()) == [
        "services.odd.devices[0]: bad device 'fuse': fuse is not an absolute path",
        "services.odd.devices[1]: bad device '/dev/a:/dev/b:/dev/c': expected "
        "HOST[:CONTAINER][:rwm]",
        "services.odd.security_opt[0]: 'no-new-privileges=maybe': not supported: only "
        "seccomp=unconfined|PROFILE.json and no-new-privileges"]


def test_file_secrets_and_configs_are_read_only_binds() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web:
            image: busybox
            secrets: [token, {source: token, target: api-key}]
            configs: [app, {source: app, target: /etc/app.conf}]
        secrets:
          token: {file: ./token.txt}
        configs:
          app: {file: /srv/app.conf}
        """})
    check_project(project, ["web"])
    [web] = service_specs(project, project.services["web"])
    assert web.mounts == [
        Mount(type="bind", source=f"{PROJECT_DIR}/token.txt", target="/run/secrets/token",
              read_only=True),
        Mount(type="bind", source=f"{PROJECT_DIR}/token.txt", target="/run/secrets/api-key",
              read_only=True),
        Mount(type="bind", source="/srv/app.conf", target="/app", read_only=True),
        Mount(type="bind", source="/srv/app.conf", target="/etc/app.conf", read_only=True)]


@pytest.mark.parametrize(("uses", "definition", "message"), [
    ("[{source: it, uid: '1000'}]", "{file: ./token.txt}",
     "compose.yaml:4: services.web.secrets[0].uid: not supported: the file is bind-mounted as "
     "it is on the host (owner and mode)"),
    ("[{source: it, mode: 0400}]", "{file: ./token.txt}",
     "compose.yaml:4: services.web.secrets[0].mode: not supported: the file is "
     "bind-mounted as it is on the host (owner and mode)"),
    ("[it]", "{external: true}",
     "compose.yaml:6: secrets.it.external: not supported: shoal has no store of secrets and "
     "configs (give a file, content or environment)"),
    ("[it]", "{environment: UNSET}",
     "compose.yaml:4: services.web.secrets[0]: the environment variable 'UNSET' that secret "
     "'it' is read from is not set"),
    ("[{source: it, uid: root}]", "{environment: TOKEN}",
     "compose.yaml:4: services.web.secrets[0]: uid 'root': expected a number"),
    ("[{source: it, mode: '0999'}]", "{environment: TOKEN}",
     "compose.yaml:4: services.web.secrets[0]: mode '0999': expected an octal mode such as "
     "0440"),
    ("[it]", "{environment: TOKEN, driver: vault}",
     "compose.yaml:6: secrets.it.driver: shoal cannot honour this"),
])
def test_secrets_shoal_cannot_honour_are_refused(uses: str, definition: str,
                                                 message: str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          web:
            image: busybox
            secrets: {uses}
        secrets:
          it: {definition}
        """}, env={"TOKEN": "s3cret"})
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["web"])
    assert str(caught.value).splitlines() == [message]


def test_values_are_written_files_with_the_owner_and_mode_asked() -> None:
    """A config's content and a variable's value are files the client writes, one per owner
    and mode (compose's defaults: root, root, 0444), bind-mounted read-only."""
    project = load_texts({"compose.yaml": """\
        services:
          web:
            image: busybox
            secrets: [token, {source: token, target: key, uid: "1000", gid: "1001", mode: 0400}]
            configs: [{source: app, target: /etc/app.conf, mode: "0440"}]
        secrets:
          token: {environment: TOKEN}
        configs:
          app: {content: "port=80\\n"}
        """}, env={"TOKEN": "s3cret", "XDG_RUNTIME_DIR": "/run/user/7"})
    check_project(project, ["web"])
    [web] = service_specs(project, project.services["web"])
    written = "/run/user/7/shoal/compose/app"
    assert web.mounts == [
        Mount(type="bind", source=f"{written}/secrets/token.0.0.444",
              target="/run/secrets/token", read_only=True),
        Mount(type="bind", source=f"{written}/secrets/token.1000.1001.400",
              target="/run/secrets/key", read_only=True),
        Mount(type="bind", source=f"{written}/configs/app.0.0.440", target="/etc/app.conf",
              read_only=True)]
    assert project_files(project, ["web"]) == [
        ProjectFile(path=f"{written}/secrets/token.0.0.444", content="s3cret", uid=0, gid=0,
                    mode=0o444),
        ProjectFile(path=f"{written}/secrets/token.1000.1001.400", content="s3cret",
                    uid=1000, gid=1001, mode=0o400),
        ProjectFile(path=f"{written}/configs/app.0.0.440", content="port=80\n", uid=0,
                    gid=0, mode=0o440)]


def test_reservations_are_what_placement_counts_and_devices_are_refused() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          web:
            image: busybox
            deploy:
              resources:
                limits: {cpus: "1", memory: 128m}
                reservations: {cpus: "0.25", memory: 32m}
          bare:
            image: busybox
            deploy: {resources: {reservations: {memory: 16m}}}
          above:
            image: busybox
            deploy: {resources: {limits: {memory: 16m}, reservations: {memory: 32m}}}
        """})
    check_project(project, ["web", "bare"])
    [web] = service_specs(project, project.services["web"])
    resources = web.resources
    assert (resources.millicpus, resources.memory) == (1000, 128 << 20)
    assert (resources.placed_millicpus, resources.placed_memory) == (250, 32 << 20)
    [bare] = service_specs(project, project.services["bare"])
    assert (bare.resources.memory, bare.resources.placed_memory) == (0, 16 << 20)
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["above"])
    assert str(caught.value) == "compose.yaml:11: services.above: invalid " \
        "resources.reserved_memory: a reservation (33554432 bytes) above the limit " \
        "(16777216 bytes)"
    gpu = load_texts({"compose.yaml": """\
        services:
          gpu:
            image: busybox
            deploy:
              resources:
                reservations:
                  devices: [{capabilities: [gpu]}]
                  generic_resources: [{discrete_resource_spec: {kind: ssd, value: 1}}]
        """})
    with pytest.raises(ComposeError) as caught:
        check_project(gpu, ["gpu"])
    assert str(caught.value).splitlines() == [
        "compose.yaml:7: "
        "services.gpu.deploy.resources.reservations.devices: not supported: shoal's nodes "
        "report no devices to reserve",
        "compose.yaml:8: "
        "services.gpu.deploy.resources.reservations.generic_resources: not supported: "
        "shoal's nodes report no generic resources"]


@pytest.mark.parametrize(("options", "expected"), [
    ("{max-size: 10m, max-file: 3, compress: 'true', tag: null}",
     LogOptions(max_size=10_000_000, max_file=3, compress=True)),
    ("{max-size: '1k'}", LogOptions(max_size=1000)),
    ("{max-file: 2, compress: 'yes'}",
     "compose.yaml:5: services.web.logging.options: log option compress 'yes': expected true "
     "or false"),
    ("{labels: tier}",
     "compose.yaml:5: services.web.logging.options: log option 'labels': not supported: "
     "shoal's json-file logs take max-size, max-file, compress (entries carry no labels, env "
     "or tag)"),
])
def test_logging_options_rotate_the_json_file_log(options: str,
                                                  expected: LogOptions | str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          web:
            image: busybox
            logging:
              options: {options}
        """})
    if isinstance(expected, str):
        with pytest.raises(ComposeError) as caught:
            check_project(project, ["web"])
        assert str(caught.value) == expected
        return
    check_project(project, ["web"])
    [web] = service_specs(project, project.services["web"])
    assert web.log_options == expected


def test_a_global_service_is_one_job_through_a_scheduler_and_one_container_alone() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          mon:
            image: busybox
            deploy: {mode: global, placement: {constraints: [node.labels.rack != r1]}}
        """})
    check_project(project, ["mon"], cluster=True)
    [job] = service_specs(project, project.services["mon"], cluster=True)
    assert (job.name, job.constraints) == ("app-mon", ["node.labels.rack!=r1"])
    assert NUMBER_LABEL not in job.labels and job.labels[SERVICE_LABEL] == "mon"
    [alone] = service_specs(project, project.services["mon"])
    assert alone.name == "app-mon-1"


def test_joining_a_global_service_s_network_is_refused_through_a_scheduler() -> None:
    project = load_texts({"compose.yaml": """\
        services:
          mon:
            image: busybox
            deploy: {mode: global}
          side:
            image: busybox
            network_mode: service:mon
        """})
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["mon", "side"], cluster=True)
    assert str(caught.value).splitlines() == [
        "compose.yaml:7: services.side.network_mode: service mon is global: it runs a "
        "container on every node, none of them its first, so there is no one network to join "
        "(name one of its containers with container:NAME)"]
    check_project(project, ["mon", "side"])  # alone, mon is one container: side joins it
    [side] = service_specs(project, project.services["side"])
    assert side.network == "container:app-mon-1"


@pytest.mark.parametrize(("deploy", "message"), [
    ("{mode: global, replicas: 2}", "compose.yaml:5: services.web.deploy.replicas: no count "
                                    "can be given: a global service runs one on every "
                                    "eligible node"),
    ("{mode: replicated-job}", "compose.yaml:5: services.web.deploy.mode: not supported: "
                               "shoal has no jobs that run to a number of completions (use "
                               "restart: no)"),
    ("{mode: global-job}", "compose.yaml:5: services.web.deploy.mode: not supported: shoal "
                           "has no jobs that run to completion once per node (use restart: "
                           "no with mode: global)"),
])
def test_modes_shoal_cannot_honour_are_refused(deploy: str, message: str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          web:
            image: busybox
            container_name: the-web
            deploy: {deploy}
        """})
    with pytest.raises(ComposeError) as caught:
        check_project(project, ["web"], cluster=True)
    assert message in str(caught.value).splitlines(), str(caught.value)


@pytest.mark.parametrize(("policy", "expected"), [
    ("{condition: any, max_attempts: 3, delay: 5s, window: 1m}",
     RestartPolicy(name="always", max_retries=3, delay=5.0, window=60.0)),
    ("{condition: on-failure, delay: 0s}", RestartPolicy(name="on-failure", delay=0.0)),
    ("{condition: none}", RestartPolicy(name="no")),
    ("{delay: soon}", "compose.yaml:4: services.web.deploy.restart_policy.delay: invalid "
                      "duration 'soon': expected numbers with units (ns, us, ms, s, m, h), "
                      "as in 30s or 1m30s"),
])
def test_swarm_s_restart_policy_delay_and_window(policy: str,
                                                 expected: RestartPolicy | str) -> None:
    project = load_texts({"compose.yaml": f"""\
        services:
          web:
            image: busybox
            deploy: {{restart_policy: {policy}}}
        """})
    if isinstance(expected, str):
        with pytest.raises(ComposeError) as caught:
            check_project(project, ["web"])
        assert str(caught.value) == expected
        return
    [web] = service_specs(project, project.services["web"])
    assert web.restart == expected
