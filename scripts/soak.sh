#!/usr/bin/env bash
# The soak of docs/RELIABILITY.md (root: it runs a namespace lab): the seed lab with
# `lbspeaker run` on four nodes, 1,000 services churning at 10 changes/s over 50 pools, the
# tor's bgpd restarted every ten minutes; stops by itself after MINUTES (default 60) and
# prints its figures. Debug build, like the test command.
#
#   ./scripts/soak.sh [MINUTES]          the soak
#   ./scripts/soak.sh --faults           the fault scenarios with the loss and the manifest
#                                        outage lasting a minute each (20 s in the test command)
#   SOAK_SEED=N  SOAK_TOR_RESTART_SECS=S  other churn, other tor period
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --faults ]; then
  LBSPEAKER_FAULT_LOSS_SECS=60 LBSPEAKER_FAULT_MANIFEST_SECS=60 FRR_LAB_REQUIRED=1 \
    cargo test -p agent-glue --test run_seed_faults -- --nocapture 2>&1 \
    | grep -vE '^\s+(Compiling|Running)'
  exit "${PIPESTATUS[0]}"
fi
minutes=${1:-60}
SOAK_MINUTES=$minutes FRR_LAB_REQUIRED=1 \
  cargo test -p agent-glue --test soak_seed_lab -- --ignored --nocapture soak 2>&1 \
  | grep -vE '^\s+(Compiling|Running)'
exit "${PIPESTATUS[0]}"
