"""An independent checker: does a placement result obey every rule? Verified from scratch.

It shares no code with the engine's filters, snapshot or rule parser on purpose (only the
protocol's one spelling of platform names, ``protocol.platforms``): it reads the
protocol records (nodes, running containers, task specs) and the result, rebuilds the final
state of every node and checks capacity, readiness, platform, networks (a process-driver node
has the host's network only), hard constraints, host ports,
container limits, a job's replicas per node, hard (anti-)affinities in the final state, links
and volumes-from, that every task is answered exactly once, and that all-or-nothing groups are
whole. Soft rules are
preferences, so they are not violations.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.addresses import address_ip
from protocol.observed import ContainerInfo, NodeInfo
from protocol.platforms import normalise, normalise_arch, normalise_os
from protocol.specs import AFFINITIES_LABEL, CONSTRAINTS_LABEL, ContainerSpec, network_container
from scheduler.placement.results import PlacementResult, Task

_DONE = {"exited", "failed", "rejected", "orphaned", "removed"}
_LIMIT_LABEL = "shoal.max-containers"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # "capacity", "platform", "constraint", "ports", ...
    task_id: str
    node_id: str
    detail: str


def _parse(text: str) -> tuple[bool, str, bool, str]:
    """(soft, key, negate, value) — the checker's own reading of the rule language."""
    t = text.strip()
    soft = t.startswith("~")
    t = t.lstrip("~")
    m = re.match(r"^(.*?)(==|!=)(.*)$", t)
    if m is None:
        raise ValueError(text)
    value = m.group(3).strip()
    if value.startswith("~"):
        soft, value = True, value[1:].strip()
    return soft, m.group(1).strip(), m.group(2) == "!=", value


def _match(pattern: str, value: str | None, fold: str = "") -> bool:
    """``fold``: "os"/"arch" canonical platform names, "case" any case (a node constraint)."""
    if value is None:
        return False
    if len(pattern) >= 2 and pattern[0] == "/" and pattern[-1] == "/":
        return re.search(pattern[1:-1], value) is not None
    if fold:
        value = value.lower()
    if fold == "arch" and not any(ch in pattern for ch in "*?["):
        pattern = normalise_arch(pattern)
    elif fold == "os" and not any(ch in pattern for ch in "*?["):
        pattern = normalise_os(pattern)
    elif fold:
        pattern = pattern.lower()
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(value, pattern)
    return value == pattern


def _in_network(ip: str, block: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


def _node_attr(node: NodeInfo, key: str) -> tuple[str | None, str]:
    if key in ("node.hostname", "node.name"):
        return node.hostname or node.id, "case"
    if key == "node.id":
        return node.id, "case"
    if key == "node.platform.os":
        return normalise_os(node.platform.os), "os"
    if key == "node.platform.arch":
        return normalise_arch(node.platform.arch), "arch"
    if key.startswith("engine.labels."):
        return node.engine_labels.get(key[len("engine.labels."):]), "case"
    label = key[len("node.labels."):] if key.startswith("node.labels.") else key
    return node.labels.get(label), "case"


def _image_names(ref: str) -> set[str]:
    base = ref.split("@", 1)[0]
    out = {ref, base}
    if base.rfind(":") > base.rfind("/"):
        out.add(base[: base.rfind(":")])
    return out


def _stores(node: NodeInfo, pattern: str) -> bool:
    """Does the node list an image ``pattern`` matches, by id, tag or the tag's repository?"""
    for listed in node.images:
        if re.fullmatch(r"[a-z0-9]+:[0-9a-f]{32,}", listed):  # an id: no tag to strip
            if _match(pattern, listed):
                return True
        elif any(_match(pattern, n) for n in _image_names(listed)):
            return True
    return False


@dataclass(slots=True)
class _Member:
    """A container in the final state of a node."""

    id: str
    spec: ContainerSpec
    new: bool


def _matches(key: str, value: str, m: _Member) -> bool:
    if key == "container":
        return _match(value, m.spec.name) or _match(value, m.id)
    if key in ("image", "container.image"):
        return any(_match(value, n) for n in _image_names(m.spec.image))
    label = key[len("label."):] if key.startswith("label.") else key
    return _match(value, m.spec.labels.get(label))


def _rules(spec: ContainerSpec, field: str) -> list[str]:
    """The spec's rules and those in Swarm classic's label (a JSON list), as the checker reads
    them (the engine refuses a malformed label at submission)."""
    own = spec.constraints if field == "constraints" else spec.affinities
    raw = spec.labels.get(CONSTRAINTS_LABEL if field == "constraints" else AFFINITIES_LABEL)
    try:
        extra = json.loads(raw) if raw is not None else []
    except ValueError:
        extra = []
    return [*own, *(t for t in extra if isinstance(t, str))] if isinstance(extra, list) \
        else list(own)


def _platform_ok(spec: ContainerSpec, node: NodeInfo) -> bool:
    os_name, arch, variant = normalise(node.platform)
    wanted = [spec.platform] if spec.platform is not None else spec.platforms
    if not wanted:
        return os_name == "linux"
    for platform in wanted:  # any one will do
        want_os, want_arch, want_variant = normalise(platform)
        if want_os != os_name or (want_arch and want_arch != arch):  # no arch: any
            continue
        if not (want_variant and variant and want_variant != variant):
            return True
    return False


def check_placement(
    nodes: Sequence[NodeInfo],
    existing: Sequence[ContainerInfo],
    tasks: Sequence[Task],
    result: PlacementResult,
    *,
    max_containers: int | None = None,
    all_or_nothing: Sequence[Sequence[str]] = (),
) -> list[Violation]:
    out: list[Violation] = []
    by_id = {n.id: n for n in nodes}
    task_by_id: dict[str, Task] = {}
    for t in tasks:
        if t.id in task_by_id:
            out.append(Violation("accounting", t.id, "", "task id given twice"))
        task_by_id[t.id] = t
    answered = Counter([a.task_id for a in result.assignments]
                       + [r.task_id for r in result.refusals])
    for tid, n in answered.items():
        if tid not in task_by_id:
            out.append(Violation("accounting", tid, "", "answer for an unknown task"))
        elif n != 1:
            out.append(Violation("accounting", tid, "", f"answered {n} times"))
    for tid in task_by_id:
        if tid not in answered:
            out.append(Violation("accounting", tid, "", "neither placed nor refused"))
    placed = {a.task_id for a in result.assignments}
    for group in all_or_nothing:
        inside = [tid for tid in group if tid in placed]
        if inside and len(inside) != len(group):
            out.append(Violation("all-or-nothing", inside[0], "",
                                 f"{len(inside)} of {len(group)} placed"))

    final: dict[str, list[_Member]] = defaultdict(list)
    for c in existing:
        if c.node_id in by_id and (c.schedule_state or "") not in _DONE:
            final[c.node_id].append(_Member(c.id, c.spec, new=False))
    static_ok: dict[tuple[int, str], str] = {}  # (id(spec), node) → "" or the broken rule
    for a in result.assignments:
        task = task_by_id.get(a.task_id)
        node = by_id.get(a.node_id)
        if task is None:
            continue
        if node is None:
            out.append(Violation("node", a.task_id, a.node_id, "no such node"))
            continue
        final[a.node_id].append(_Member(task.id, task.spec, new=True))
        ck = (id(task.spec), node.id)
        verdict = static_ok.get(ck)
        if verdict is None:
            verdict = ""
            if node.status != "ready" or node.availability != "active":
                verdict = f"readiness: node is {node.status}/{node.availability}"
            elif not _platform_ok(task.spec, node):
                verdict = f"platform: node is {node.platform}"
            elif node.runtime == "process" and (task.spec.connected or task.spec.network
                                                not in ("none", "host", "default")):
                verdict = "network: node has the host's network only"
            else:
                for text in _rules(task.spec, "constraints"):
                    soft, key, neg, value = _parse(text)
                    if key == "node":  # Swarm classic's: the node's id or its name
                        matched = any(_match(value, name, "case")
                                      for name in (node.id, node.hostname or node.id))
                    elif key == "node.ip":
                        matched = _in_network(address_ip(node.address), value)
                    else:
                        attr, fold = _node_attr(node, key)
                        matched = _match(value, attr, fold)
                    if not soft and matched == neg:
                        verdict = f"constraint: {text}"
                        break
            static_ok[ck] = verdict
        if verdict:
            rule, _, detail = verdict.partition(": ")
            out.append(Violation(rule, a.task_id, a.node_id, detail))
        for mount in task.spec.mounts:
            holders = [n.id for n in nodes if any(v.spec.name == mount.source
                                                  for v in n.volumes)]
            if mount.type == "volume" and holders and node.id not in holders:
                out.append(Violation("volume", a.task_id, a.node_id,
                                     f"volume {mount.source} is on {', '.join(holders)}"))

    where: dict[str, str] = {}
    for node_id, members in final.items():
        for m in members:
            where[m.id] = node_id
            if m.spec.name:
                where.setdefault(m.spec.name, node_id)
    for node_id, members in final.items():
        if not any(m.new for m in members):
            continue
        out.extend(_check_node(by_id[node_id], members, where, max_containers))
    return out


def _check_node(node: NodeInfo, members: list[_Member], where: dict[str, str],
                max_containers: int | None) -> list[Violation]:
    out: list[Violation] = []
    first_new = next(m.id for m in members if m.new)
    cpu = sum(m.spec.resources.placed_millicpus for m in members)
    mem = sum(m.spec.resources.placed_memory for m in members)
    pids = sum(m.spec.resources.pids for m in members)
    cap = node.capacity
    if cpu > cap.millicpus or mem > cap.memory or (cap.pids and pids > cap.pids):
        out.append(Violation("capacity", first_new, node.id,
                             f"cpu {cpu}/{cap.millicpus} mem {mem}/{cap.memory} "
                             f"pids {pids}/{cap.pids}"))
    limit = max_containers
    raw = node.labels.get(_LIMIT_LABEL)
    if raw is not None and raw.isdigit():
        limit = int(raw)
    if limit is not None and len(members) > limit:
        out.append(Violation("max-containers", first_new, node.id,
                             f"{len(members)} containers, limit {limit}"))
    per_job = Counter(m.spec.name for m in members if m.spec.name)
    for m in members:
        most = m.spec.max_per_node
        if m.new and most and per_job[m.spec.name] > most:
            out.append(Violation("max-per-node", m.id, node.id,
                                 f"{per_job[m.spec.name]} of job {m.spec.name}, at most {most}"))
            break
    bound: list[tuple[int, str, str, str]] = []  # (port, protocol, address or "", holder)
    for m in members:
        for p in m.spec.ports:
            on_host = m.spec.network == "host"  # the container's own ports are the host's
            port = (p.host_port or p.container_port) if on_host else p.host_port
            if port == 0:
                continue
            ip = "" if on_host or p.host_ip in ("", "0.0.0.0", "::") else p.host_ip
            for b_port, b_proto, b_ip, other in bound:
                if (b_port, b_proto) == (port, p.protocol) and (ip == b_ip or not ip or not b_ip) \
                        and (m.new or other != ""):
                    out.append(Violation("ports", m.id, node.id,
                                         f"host port {port}/{p.protocol} also used by {other}"))
                    break
            bound.append((port, p.protocol, ip, m.id))
    for m in members:
        for text in _rules(m.spec, "affinities"):
            soft, key, neg, value = _parse(text)
            if soft:
                continue
            others = [o for o in members if o is not m and _matches(key, value, o)]
            # image==: stored on the node (listed by the worker) or brought by another container
            stored = key == "image" and _stores(node, value)
            if neg and stored and m.new:
                out.append(Violation("anti-affinity", m.id, node.id, f"{text}: image stored"))
            elif neg:
                # A newcomer must respect old rules too; two old containers are not our doing.
                bad = [o for o in others if m.new or o.new]
                if bad:
                    out.append(Violation("anti-affinity", m.id if m.new else bad[0].id,
                                         node.id, f"{text} matches {bad[0].id}"))
            elif m.new and not others and not stored:
                out.append(Violation("affinity", m.id, node.id, f"{text}: no match here"))
        if m.new:
            peer = network_container(m.spec.network)  # --network container:NAME
            for dep in (*m.spec.links, *m.spec.volumes_from, *([peer] if peer else [])):
                target = dep.split(":", 1)[0].strip()
                if where.get(target) != node.id:
                    out.append(Violation("links", m.id, node.id,
                                         f"{target} is on {where.get(target, 'no node')}"))
    return out
