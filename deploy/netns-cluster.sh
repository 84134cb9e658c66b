#!/usr/bin/env bash
# A multi-host topology on one machine, made of network namespaces (run as root):
#
#   deploy/netns-cluster.sh up HOST...        one namespace per host, each with its own address
#                                             on a private switch; prints "HOST ADDRESS" lines
#   deploy/netns-cluster.sh exec HOST CMD...  run CMD on HOST: its network, its own hostname
#   deploy/netns-cluster.sh ip HOST           the host's address
#   deploy/netns-cluster.sh partition HOST    cut HOST off the switch (its link goes down)
#   deploy/netns-cluster.sh heal HOST         plug it back
#   deploy/netns-cluster.sh down              remove every host and the switch
#
# The switch is a bridge inside a namespace of its own, so nothing of this touches the machine's
# own network: the hosts reach each other and nothing else. A host shares /sys with the machine
# (cgroups stay visible, which `ip netns exec` would hide by remounting /sys): `exec` enters the
# host's network with nsenter and gives the command its own UTS namespace for the hostname.
#
# SHOAL_NETNS_PREFIX (default "shoal") names the namespaces PREFIX-sw and PREFIX-HOST, so
# several topologies can coexist; SHOAL_NETNS_SUBNET (default 10.241.0) is the /24 they use.
set -euo pipefail

prefix=${SHOAL_NETNS_PREFIX:-shoal}
subnet=${SHOAL_NETNS_SUBNET:-10.241.0}
state=/run/shoal-netns/$prefix
switch=$prefix-sw

die() { echo "netns-cluster: $*" >&2; exit 1; }
host_ns() { echo "$prefix-$1"; }
known() { [ -f "$state/hosts" ] && grep -q "^$1 " "$state/hosts"; }
field() { known "$1" || die "no host $1 in topology $prefix"; awk -v h="$1" '$1 == h {print $'"$2"'}' "$state/hosts"; }

up() {
    [ $# -gt 0 ] || die "usage: up HOST..."
    [ ! -e "$state" ] || die "topology $prefix is up already ($state): run down first"
    for host in "$@"; do
        [[ $host =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "bad host name '$host' (a-z, 0-9, -)"
    done
    mkdir -p "$state"
    ip netns add "$switch"
    ip -n "$switch" link set lo up
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up
    n=10
    for host in "$@"; do
        n=$((n + 1))
        [ $n -lt 255 ] || die "at most 244 hosts"
        ns=$(host_ns "$host")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # the host's end is eth0; the switch's end is named by the host's number (15 chars max)
        ip link add "${prefix:0:8}h$n" netns "$ns" type veth peer name "p$n" netns "$switch"
        ip -n "$ns" link set "${prefix:0:8}h$n" name eth0
        ip -n "$ns" addr add "$subnet.$n/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$switch" link set "p$n" master br0
        ip -n "$switch" link set "p$n" up
        echo "$host $subnet.$n p$n" >> "$state/hosts"
        echo "$host $subnet.$n"
    done
}

down() {
    if [ -f "$state/hosts" ]; then
        while read -r host _ _; do
            ip netns del "$(host_ns "$host")" 2>/dev/null || true
        done < "$state/hosts"
    fi
    ip netns del "$switch" 2>/dev/null || true
    rm -rf "$state"
}

run_on() {
    [ $# -ge 2 ] || die "usage: exec HOST CMD..."
    host=$1; shift
    known "$host" || die "no host $host in topology $prefix"
    exec nsenter --net="/run/netns/$(host_ns "$host")" -- \
        unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

link() {
    known "$1" || die "no host $1 in topology $prefix"
    ip -n "$switch" link set "$(field "$1" 3)" "$2"
}

command=${1:-}
shift || true
case "$command" in
    up) up "$@" ;;
    down) down ;;
    exec) run_on "$@" ;;
    ip) field "${1:?usage: ip HOST}" 2 ;;
    partition) link "${1:?usage: partition HOST}" down ;;
    heal) link "${1:?usage: heal HOST}" up ;;
    *) die "usage: $0 up HOST... | down | exec HOST CMD... | ip HOST | partition HOST | heal HOST" ;;
esac
