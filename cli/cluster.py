"""The cluster commands of the CLI: ``shoal nodes`` and ``shoal node inspect|drain|activate|
label|rm``, against a scheduler (a single worker answers them ``Unsupported``)."""

from __future__ import annotations

import click

from cli.arguments import key_values
from cli.client import ShoalCommand, connect, host_option
from cli.output import as_json, table
from cli.views import NODE_FIELDS, NODE_HEADERS, node_view
from protocol.messages import (
    InspectNode,
    LabelNode,
    ListNodes,
    NodeInspected,
    NodeList,
    Ok,
    RemoveNode,
    UpdateNode,
)
from protocol.observed import NodeAvailability, NodeInfo, NodeUsage


def human_bytes(amount: int) -> str:
    """1.5GiB, 512MiB, 0B: the units docker uses for sizes, binary."""
    size = float(amount)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            text = f"{size:.1f}".removesuffix(".0") if unit != "B" else str(int(size))
            return f"{text}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def cpus(millicpus: int) -> str:
    return f"{millicpus / 1000:g}"


def node_row(node: NodeInfo, usage: NodeUsage) -> list[str]:
    """One row of ``shoal nodes``."""
    capacity = node.capacity
    labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
    return [node.id, node.status, node.availability, str(node.platform),
            f"{cpus(usage.millicpus)}/{cpus(capacity.millicpus)}",
            f"{human_bytes(usage.memory)}/{human_bytes(capacity.memory)}",
            str(usage.containers), labels]


NODE_COLUMNS = ["NAME", "STATUS", "AVAILABILITY", "PLATFORM", "CPU", "MEMORY", "CONTAINERS",
                "LABELS"]


@click.command(cls=ShoalCommand)
@host_option
@click.option("-f", "--filter", "filters", multiple=True,
              help="KEY=VALUE: status, availability, label (label=k or label=k=v).")
@click.option("--format", "fmt", default="table",
              help="table, json, or a template: '{{.ID}} {{.Status}}'.")
def nodes(host: str | None, filters: tuple[str, ...], fmt: str) -> None:
    """List the cluster's nodes: status, platform, what is allocated of their capacity."""
    wanted = key_values(filters, "filter", "-f")
    if fmt not in ("table", "json"):
        from cli.formatting import parse  # only for a template

        parse(fmt, NODE_FIELDS)  # a bad template is refused before anything is asked
    with connect(host) as client:
        listed = client.ask(lambda r: ListNodes(filters=wanted, reply=r), NodeList)
    ordered = sorted(listed.nodes, key=lambda n: n.id)
    if fmt == "json":
        as_json([{"node": n, "usage": listed.usage.get(n.id, NodeUsage())} for n in ordered])
        return
    rows = [node_row(n, listed.usage.get(n.id, NodeUsage())) for n in ordered]
    if fmt == "table":
        table(NODE_COLUMNS, rows)
        insecure = [n.id for n in ordered if not n.key and n.status != "down"]
        if insecure:
            click.secho(f"WARNING: {', '.join(insecure)} run(s) --insecure: no authentication "
                        "and no encryption on their port", fg="red", err=True)
        return
    from cli.formatting import print_formatted

    print_formatted(fmt, [node_view(n, listed.usage.get(n.id, NodeUsage()), row[4], row[5])
                          for n, row in zip(ordered, rows, strict=True)],
                    NODE_FIELDS, NODE_HEADERS)


@click.group()
def node() -> None:
    """Inspect a node, drain or activate it, set its labels, remove it."""


@node.command("inspect", cls=ShoalCommand)
@host_option
@click.argument("node_id", metavar="NODE")
def inspect_node(host: str | None, node_id: str) -> None:
    """Everything the cluster knows about a node, as JSON."""
    with connect(host) as client:
        as_json(client.ask(lambda r: InspectNode(node_id=node_id, reply=r), NodeInspected))


def _availability(host: str | None, node_id: str, availability: NodeAvailability) -> None:
    with connect(host) as client:
        client.ask(lambda r: UpdateNode(node_id=node_id, availability=availability, reply=r),
                   Ok)
    click.echo(node_id)


@node.command("drain", cls=ShoalCommand)
@host_option
@click.argument("node_id", metavar="NODE")
def drain(host: str | None, node_id: str) -> None:
    """No new containers on NODE; those running there stay."""
    _availability(host, node_id, "drain")


@node.command("activate", cls=ShoalCommand)
@host_option
@click.argument("node_id", metavar="NODE")
def activate(host: str | None, node_id: str) -> None:
    """Let placement use NODE again."""
    _availability(host, node_id, "active")


@node.command("label", cls=ShoalCommand)
@host_option
@click.option("--rm", "remove", multiple=True, metavar="KEY", help="Remove a label.")
@click.argument("node_id", metavar="NODE")
@click.argument("labels", nargs=-1, metavar="KEY=VALUE...")
def label(host: str | None, remove: tuple[str, ...], node_id: str, labels: tuple[str, ...]) -> None:
    """Set and remove NODE's labels (kept when its worker joins again); prints them."""
    add = key_values(labels, "label", "LABELS")
    if not add and not remove:
        raise click.UsageError("give KEY=VALUE labels to set or --rm KEY to remove")

    with connect(host) as client:
        info = client.ask(lambda r: LabelNode(node_id=node_id, add=add, remove=list(remove),
                                              reply=r), NodeInspected).info
    click.echo(",".join(f"{k}={v}" for k, v in sorted(info.labels.items())))


@node.command("rm", cls=ShoalCommand)
@host_option
@click.option("-f", "--force", is_flag=True,
              help="Remove the node even though its worker is still joined.")
@click.argument("node_ids", metavar="NODE...", nargs=-1, required=True)
def remove_node(host: str | None, force: bool, node_ids: tuple[str, ...]) -> None:
    """Remove departed (down) nodes from the cluster; their containers are rescheduled or
    orphaned as when a node is lost."""
    with connect(host) as client:
        for node_id in node_ids:
            client.ask(lambda r, n=node_id: RemoveNode(node_id=n, force=force,  # type: ignore[misc]
                                                       reply=r), Ok)
            click.echo(node_id)


CLUSTER_COMMANDS: list[click.Command] = [nodes, node]
