#!/usr/bin/env bash
# A seed-lab node under containerlab: GoBGP from Debian (the same 3.10 the namespace lab uses),
# the node's address and static route once containerlab has plugged in eth1, then its PodCIDR.
# ADDRESS, ROUTE and ANNOUNCE come from the node's env in seed.clab.yml.
set -euo pipefail
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gobgpd iproute2 >/dev/null
until ip link show eth1 >/dev/null 2>&1; do sleep 0.5; done
ip addr add "$ADDRESS" dev eth1
ip link set eth1 up
ip route add $ROUTE
gobgpd -f /config/gobgpd.toml -p --api-hosts 127.0.0.1:50051 --pprof-disable &
until gobgp -u 127.0.0.1 -p 50051 global >/dev/null 2>&1; do sleep 0.5; done
gobgp -u 127.0.0.1 -p 50051 global rib -a ipv4 add "$ANNOUNCE" origin igp
wait
