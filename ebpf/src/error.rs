//! Errors of the dataplane, each saying what is wrong and what to do.

use std::path::PathBuf;

use crate::plan::PlanError;
use crate::store::StoreError;

/// A configuration the dataplane refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not one of the supported primes.
    #[error("Maglev table size {0} is not one of {list:?}", list = crate::maglev::SUPPORTED_M)]
    MaglevSize(u32),
    /// The Maglev map would exceed 2^32 entries.
    #[error("maglev_m * maglev_tables exceeds 2^32 entries")]
    MaglevTooBig,
    /// An empty or reversed SNAT range.
    #[error("SNAT port range {lo}-{hi} is empty or starts at 0")]
    SnatPorts {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// SNAT ports that NodePorts use.
    #[error(
        "SNAT ports {}-{} overlap the NodePort range {}-{}: pick ports outside it (default 61000-65535)",
        snat.0, snat.1, nodeports.0, nodeports.1
    )]
    SnatOverlapsNodePorts {
        /// The SNAT range.
        snat: (u16, u16),
        /// The NodePort range.
        nodeports: (u16, u16),
    },
    /// SNAT ports that the node's own connections use.
    #[error(
        "SNAT ports {}-{} overlap the node's ephemeral ports {}-{} (net.ipv4.ip_local_port_range): \
         narrow one of them",
        snat.0, snat.1, ephemeral.0, ephemeral.1
    )]
    SnatOverlapsEphemeral {
        /// The SNAT range.
        snat: (u16, u16),
        /// `ip_local_port_range`.
        ephemeral: (u16, u16),
    },
    /// A map of size zero.
    #[error("map size {0} must not be 0")]
    ZeroSize(&'static str),
    /// Reverse-NAT ids are 16 bits.
    #[error("rev_nat size {0} exceeds 65535 (reverse-NAT ids are 16 bits)")]
    RevNatSize(u32),
}

/// Why the dataplane could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Not privileged enough.
    #[error(
        "{what}: permission denied. The dataplane needs CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN \
         on kernels before 5.8): run lbspeaker as root, or in Kubernetes give the agent \
         `securityContext.privileged: true` or `capabilities.add: [BPF, NET_ADMIN, PERFMON]`; \
         or run lbspeaker without the dataplane (`--dataplane off`)"
    )]
    Permission {
        /// What was attempted.
        what: String,
    },
    /// The pin root is not on a BPF filesystem.
    #[error(
        "{} is not on a BPF filesystem: mount one with `mount -t bpf bpf /sys/fs/bpf` (or point \
         `--bpffs-root` at a directory on a bpffs mount); maps must be pinned there to survive a \
         restart",
        path.display()
    )]
    NoBpffs {
        /// The configured root.
        path: PathBuf,
    },
    /// Pinned maps from another version or configuration.
    #[error(
        "the maps pinned under {} cannot be adopted: {detail}. Remove that directory to start \
         afresh (established flows through this node are dropped), or restore the previous \
         configuration",
        root.display()
    )]
    IncompatiblePins {
        /// The pin root.
        root: PathBuf,
        /// What differs.
        detail: String,
    },
    /// The verifier rejected a program.
    #[error(
        "the kernel's verifier rejected {program} ({message}); the kernel may be too old \
         (Linux 6.6 or later is needed for TCX links). Verifier log:\n{log}"
    )]
    Verifier {
        /// The program.
        program: &'static str,
        /// The syscall error.
        message: String,
        /// The verifier's log.
        log: String,
    },
    /// The object or aya failed otherwise.
    #[error("loading the eBPF object: {message}")]
    Object {
        /// What failed.
        message: String,
    },
    /// No such interface.
    #[error("interface {interface} not found{}", netns.as_ref().map(|p| format!(" in network namespace {}", p.display())).unwrap_or_default())]
    NoInterface {
        /// The interface.
        interface: String,
        /// Its namespace.
        netns: Option<PathBuf>,
    },
    /// Attaching failed.
    #[error("attaching to {interface}: {message}")]
    Attach {
        /// The interface.
        interface: String,
        /// What failed.
        message: String,
    },
    /// A file or namespace operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What was attempted.
        what: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// A map operation failed while setting up.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a sync did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A map operation failed; the next sync re-reads the maps and starts from what they hold.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// One frontend could not be programmed (only from the single-frontend calls; a full
    /// sync reports these in its report and programs the others).
    #[error(transparent)]
    Plan(#[from] PlanError),
}
