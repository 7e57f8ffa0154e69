//! Least privilege for the daemon: every capability the rest of the run does not need is
//! dropped before the runtime starts its threads.
//!
//! Linux capabilities belong to each thread, and a thread is born with its creator's: they
//! are therefore dropped on the main thread before any other exists (the tokio runtime, the
//! directory watcher, the blocking pool), so every thread of the process has the same small
//! set. What the daemon opens before that (the local API socket, with its group) needs more;
//! what it opens later (BGP listeners on port 179 after a manifest edit, packet sockets for
//! interfaces that appear, eBPF programs attached to a recreated uplink) is exactly what is
//! kept.

use std::collections::BTreeSet;

use caps::{CapSet, Capability, CapsHashSet};

/// What the run needs privileges for (`lbspeaker operator`: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// This node's BGP speaker: listeners on port 179 (a peer's localPort, at any time),
    /// and received routes may be installed in the kernel (`lbspeaker.io/install-routes`,
    /// turned on by a manifest edit at any time).
    pub bgp: bool,
    /// L2 announcements: AF_PACKET sockets for ARP and NDP, opened per interface as policies
    /// and interfaces change.
    pub l2: bool,
    /// The eBPF dataplane: maps and programs loaded at start, attached again when an
    /// interface comes back.
    pub dataplane: bool,
}

/// The capabilities a run with `needs` keeps, and why each.
pub fn needed(needs: Needs) -> Vec<(Capability, &'static str)> {
    let mut keep = Vec::new();
    if needs.bgp {
        keep.push((
            Capability::CAP_NET_BIND_SERVICE,
            "BGP listeners on port 179 (a peer's localPort, at any time)",
        ));
    }
    if needs.bgp || needs.dataplane {
        keep.push((
            Capability::CAP_NET_ADMIN,
            if needs.dataplane {
                "installing received routes in the kernel, attaching the dataplane (tc)"
            } else {
                "installing received routes in the kernel (lbspeaker.io/install-routes, at any time)"
            },
        ));
    }
    if needs.l2 {
        keep.push((
            Capability::CAP_NET_RAW,
            "ARP/NDP packet sockets for L2 announcements",
        ));
    }
    if needs.dataplane {
        keep.push((Capability::CAP_BPF, "eBPF maps and programs"));
        keep.push((
            Capability::CAP_PERFMON,
            "loading the dataplane's programs (pointer arithmetic)",
        ));
    }
    keep
}

/// What [`drop_to`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Kept: in the effective and permitted sets (and the bounding set).
    pub kept: Vec<String>,
    /// Wanted but not held (a non-root start without them): what needs them will fail
    /// and say so.
    pub missing: Vec<String>,
    /// How many capabilities the process held before and gave up.
    pub dropped: usize,
    /// Whether the bounding set could be reduced (it needs CAP_SETPCAP).
    pub bounding: bool,
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// A capability set could not be read or written.
    #[error("cannot {what}: {message}")]
    Caps {
        /// What was being done.
        what: &'static str,
        /// What the kernel said.
        message: String,
    },
}

fn names(set: &CapsHashSet) -> Vec<String> {
    let v: BTreeSet<String> = set.iter().map(|c| c.to_string()).collect();
    v.into_iter().collect()
}

/// Drops every capability `needs` does not call for ([`needed`], [`drop_to`]) and logs what
/// was kept and why, and what was wanted but not held. Call it on the main thread before the
/// runtime starts (after binding what needs more, such as the local API socket).
pub fn drop_for(needs: Needs) -> Result<Dropped, PrivilegeError> {
    let keep = needed(needs);
    let caps: Vec<Capability> = keep.iter().map(|(c, _)| *c).collect();
    let d = drop_to(&caps)?;
    let why: Vec<String> = keep.iter().map(|(c, w)| format!("{c}: {w}")).collect();
    tracing::info!(kept = ?d.kept, dropped = d.dropped, bounding_set_reduced = d.bounding, why = ?why, "capabilities dropped");
    if !d.missing.is_empty() {
        tracing::warn!(missing = ?d.missing, "started without capabilities the run may need; what needs them will fail");
    }
    Ok(d)
}

/// Reduces this thread's capabilities to `keep` (those of it that are held): bounding set
/// first (while CAP_SETPCAP is still effective), then inheritable and ambient cleared,
/// then effective and permitted; and sets no_new_privs, so nothing executed later can
/// gain more. Call it before any other thread exists.
pub fn drop_to(keep: &[Capability]) -> Result<Dropped, PrivilegeError> {
    let err = |what: &'static str| {
        move |e: caps::errors::CapsError| PrivilegeError::Caps {
            what,
            message: e.to_string(),
        }
    };
    let want: CapsHashSet = keep.iter().copied().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("read the permitted set"))?;
    let kept: CapsHashSet = want.intersection(&permitted).copied().collect();
    let missing: CapsHashSet = want.difference(&permitted).copied().collect();
    let dropped = permitted.difference(&kept).count();
    let bounding = if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(err("read the effective set"))?
    {
        let bound = caps::read(None, CapSet::Bounding).map_err(err("read the bounding set"))?;
        for c in bound.difference(&kept) {
            caps::drop(None, CapSet::Bounding, *c).map_err(err("reduce the bounding set"))?;
        }
        true
    } else {
        false
    };
    caps::clear(None, CapSet::Ambient).map_err(err("clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(err("set the permitted set"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| PrivilegeError::Caps {
        what: "set no_new_privs",
        message: e.to_string(),
    })?;
    Ok(Dropped {
        kept: names(&kept),
        missing: names(&missing),
        dropped,
        bounding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_roles_that_run_bring_their_capabilities() {
        let caps = |n| -> Vec<Capability> { needed(n).into_iter().map(|(c, _)| c).collect() };
        assert_eq!(
            caps(Needs {
                bgp: false,
                l2: false,
                dataplane: false
            }),
            []
        );
        let l2_only = caps(Needs {
            bgp: false,
            l2: true,
            dataplane: false,
        });
        assert_eq!(l2_only, [Capability::CAP_NET_RAW]);
        let bgp = caps(Needs {
            bgp: true,
            l2: false,
            dataplane: false,
        });
        assert!(bgp.contains(&Capability::CAP_NET_ADMIN), "{bgp:?}");
        assert!(bgp.contains(&Capability::CAP_NET_BIND_SERVICE), "{bgp:?}");
        assert!(!bgp.contains(&Capability::CAP_BPF), "{bgp:?}");
        let all = caps(Needs {
            bgp: true,
            l2: true,
            dataplane: true,
        });
        assert!(all.contains(&Capability::CAP_NET_RAW) && all.contains(&Capability::CAP_BPF));
        assert!(!all.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!all.contains(&Capability::CAP_DAC_OVERRIDE));
    }

    #[test]
    fn dropping_in_a_thread_of_its_own_leaves_that_thread_with_what_was_kept_and_held() {
        // Capabilities are per thread: a thread of its own leaves the test process alone.
        let r = std::thread::spawn(|| {
            let before = caps::read(None, CapSet::Permitted).unwrap();
            let d = drop_to(&[Capability::CAP_NET_RAW, Capability::CAP_NET_BIND_SERVICE]).unwrap();
            let eff = caps::read(None, CapSet::Effective).unwrap();
            let prm = caps::read(None, CapSet::Permitted).unwrap();
            (before, d, eff, prm)
        })
        .join()
        .unwrap();
        let (before, d, eff, prm) = r;
        assert_eq!(eff, prm);
        for c in &prm {
            assert!(
                [Capability::CAP_NET_RAW, Capability::CAP_NET_BIND_SERVICE].contains(c),
                "{c} kept"
            );
        }
        assert_eq!(d.kept.len() + d.missing.len(), 2);
        assert_eq!(d.dropped, before.len() - d.kept.len());
    }
}
