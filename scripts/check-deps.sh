#!/usr/bin/env bash
# The dependency rule (docs/ARCHITECTURE.md): the core crates never depend on Kubernetes.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in bgp lbipam l2announce ebpf; do
  bad=$(cargo tree -p "$crate" -e normal,build,dev --prefix none --format '{p}' 2>/dev/null \
        | awk '{print $1}' | grep -xE 'kube|kube-[a-z-]+|k8s-openapi|crds' | sort -u || true)
  if [ -n "$bad" ]; then
    echo "dependency rule broken: $crate depends on $(echo $bad | tr '\n' ' ')" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "bgp, lbipam, l2announce and ebpf depend on no kube, k8s-openapi or crds"
exit $status
