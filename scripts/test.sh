#!/usr/bin/env bash
# Every check and every test of the workspace, the lab tests included (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== dependency rule"
./scripts/check-deps.sh
echo "== cargo test"
# Lab tests fail instead of skipping when they cannot run.
FRR_LAB_REQUIRED=1 KUBECTL_REQUIRED=1 cargo test --workspace
