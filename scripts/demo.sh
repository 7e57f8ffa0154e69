#!/usr/bin/env bash
# The main job: the seed lab from the field, in network namespaces on this machine.
# Extra arguments go to `frr-lab demo` (for example --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --quiet -p frr-lab
exec ./target/debug/frr-lab demo "$@"
