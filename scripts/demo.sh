#!/usr/bin/env bash
# The main job: the seed lab from the field in network namespaces on this machine, with
# lbspeaker on every node: the FRR tor's sessions and routes (172.16.1.1 as ECMP), a node's
# `lbspeaker bgp peers`, the service's address. Extra arguments go to `frr-lab demo`
# (for example --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet -p frr-lab -p agent-glue
exec ./target/debug/frr-lab demo "$@"
