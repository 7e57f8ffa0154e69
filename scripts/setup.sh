#!/usr/bin/env bash
# Installs the Debian packages lbspeaker's demo and tests need, when any is missing.
# Debian 12, as root. Safe to run again: it does nothing when everything is there.
# `--with-test-tools` (the test command) also installs cargo-deny.
set -euo pipefail

PACKAGES=(
  frr frr-pythontools gobgpd bird2 exabgp
  iproute2 tcpdump tshark arping iputils-ping ndisc6 curl wrk python3-scapy
  iptables nftables clang llvm libbpf-dev bpftool ethtool
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update
  # tshark asks whether non-root users may capture; they need not.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (rustup)" >&2; exit 1; }

# The test command also needs cargo-deny (licences, duplicate crates, sources; deny.toml), built
# from crates.io: about 3 minutes on 2 cores, once.
CARGO_DENY_VERSION=0.20.2
if [ "${1:-}" = "--with-test-tools" ] &&
   ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  echo "setup: installing cargo-deny $CARGO_DENY_VERSION" >&2
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
