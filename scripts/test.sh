#!/usr/bin/env bash
# Every check and every test of the workspace, the lab tests included (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-test-tools

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== dependency rule"
./scripts/check-deps.sh
echo "== cargo deny (licenses, bans, sources)"
cargo deny --locked check licenses bans sources
# The RustSec database is a git repository this project's machines cannot fetch: advisories
# only where it can be (CARGO_DENY_ADVISORIES=1), see docs/RELIABILITY.md.
if [ "${CARGO_DENY_ADVISORIES:-0}" = 1 ]; then
  cargo deny --locked check advisories
fi
echo "== cargo test"
# Lab tests fail instead of skipping when they cannot run, and so do the deploy tests
# without kubectl or helm.
FRR_LAB_REQUIRED=1 KUBECTL_REQUIRED=1 HELM_REQUIRED=1 cargo test --workspace
