#!/usr/bin/env bash
# The full-size reliability benchmarks of docs/RELIABILITY.md (root: they run namespace labs).
# Release build; each prints its figures; about 15 minutes in all, 9 of them for the send hold
# timer (skip it with RELIABILITY_SKIP_SEND_HOLD=1).
#
#   ./scripts/reliability-bench.sh            all of them
#   ./scripts/reliability-bench.sh million    only those whose name contains "million"
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-bench_}
skip=()
[ "${RELIABILITY_SKIP_SEND_HOLD:-0}" = 1 ] && skip=(--skip send_hold_time)
for t in reliability_load reliability_manifests; do
  echo "== $t"
  FRR_LAB_REQUIRED=1 cargo test --release -p tests --test "$t" -- \
    --ignored --nocapture --test-threads 1 "${skip[@]}" "$filter" 2>&1 \
    | grep -vE '^\s+(Compiling|Running)' || exit 1
done
