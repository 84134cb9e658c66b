"""A worker's container networks: bridge networks on this host (a Linux bridge each, NAT to
the outside with nftables), their address management, and each container's endpoint on one
(a veth pair, an address, published ports, /etc/hosts, /etc/hostname, /etc/resolv.conf),
the names its resolver answers and the proxy of its published ports.

- ``state``: what this worker's networks and endpoints are, in its state dir (file-locked).
- ``ipam``: pure address arithmetic: a free subnet, the next free address.
- ``links``: the kernel's side through pyroute2 (bridges, veths, addresses, routes).
- ``nat``: the worker's own nftables table (masquerade, published ports, internal networks).
- ``files``: the per-container hosts, hostname and resolv.conf.
- ``names``: the names the embedded resolver answers (local and remote endpoints).
- ``dns_answers``: what the resolver says to one question (pure; dnspython's codec).
- ``resolver``: the resolver at 127.0.0.11 in each container namespace, served by the worker.
- ``proxy``: the userland proxy of published ports (loopback and hairpin).
- ``allocation``: a container's address and host ports on a network, chosen in the state.
- ``host``: ``HostNetworks``, the worker's networks as objects on its host (bridges, VXLAN
  devices, its nftables table; create, list, inspect, remove, prune) and its devices' names.
- ``manager``: ``Networks`` (a ``HostNetworks``): its containers' endpoints on them (prepare,
  attach, detach, release, connect, disconnect), their resolvers and proxies, and the
  cluster's overlay endpoints; what the driver and the worker's verbs use.
- ``service``: the network verbs a worker answers.
- ``vxlan``: an overlay's VXLAN device and its forwarding and neighbour entries.
"""
