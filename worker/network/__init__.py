"""A worker's container networks: bridge networks on this host (a Linux bridge each, NAT to
the outside with nftables), their address management, and each container's endpoint on one
(a veth pair, an address, published ports, /etc/hosts, /etc/hostname, /etc/resolv.conf).

- ``state``: what this worker's networks and endpoints are, in its state dir (file-locked).
- ``ipam``: pure address arithmetic: a free subnet, the next free address.
- ``links``: the kernel's side through pyroute2 (bridges, veths, addresses, routes).
- ``nat``: the worker's own nftables table (masquerade, published ports, internal networks).
- ``files``: the per-container hosts, hostname and resolv.conf.
- ``manager``: ``Networks``, what the driver and the worker's verbs use.
"""
