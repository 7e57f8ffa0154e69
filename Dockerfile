# syntax=docker/dockerfile:1
# The lbspeaker image: one binary (agent, operator and CLI) on a minimal runtime.
#
#   docker build -t ghcr.io/lbspeaker/lbspeaker:0.1.0 .
#
# The manifests in deploy/ run it as `/usr/bin/lbspeaker agent ...` (root with a few
# capabilities, see deploy/base/agent-daemonset.yaml) and `/usr/bin/lbspeaker operator ...`
# (the image's user 65532, no capability); agent-glue/tests/deploy_manifests.rs checks that
# this file and the manifests agree on the path, the user and the entrypoint.

# Build: Rust, and clang with the BPF target plus the libbpf headers for ebpf/build.rs, which
# compiles ebpf/bpf/lb.bpf.c into the object the binary embeds.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang llvm libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p agent-glue --bin lbspeaker \
 && mkdir -p /out/bpf \
 && cp target/release/lbspeaker /out/lbspeaker \
 && objs="$(find target/release/build -path '*/ebpf-*/out/lb.bpf.o')" \
 && [ "$(printf '%s\n' "$objs" | wc -l)" -eq 1 ] \
 && cp "$objs" /out/bpf/lb.bpf.o

# Runtime: glibc and libgcc only (the binary links nothing else: TLS is rustls), no shell.
# `kubectl exec POD -- lbspeaker bgp peers` runs the same binary as the CLI.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lbspeaker /usr/bin/lbspeaker
# The tc programs as built. The binary embeds this very object and loads it from memory; the
# file is here for inspection (`bpftool btf dump file /usr/lib/lbspeaker/bpf/lb.bpf.o`).
COPY --from=build /out/bpf/lb.bpf.o /usr/lib/lbspeaker/bpf/lb.bpf.o
USER 65532:65532
ENTRYPOINT ["/usr/bin/lbspeaker"]
CMD ["--help"]
