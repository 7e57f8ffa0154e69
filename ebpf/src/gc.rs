//! Conntrack garbage collection, decided in Rust: the programs only stamp entries with the
//! time they last saw a packet and with TCP's FIN/RST; here the two entries of a flow
//! (forward and reverse) are paired and expire together, after the timeout of the flow's
//! state. The LRU maps also evict on their own when full; GC keeps them from filling and
//! tells which backends still carry flows, so draining backends can be released.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::maps::{BackendVal, CT_FWD, CT_REV, CtKey, CtVal, RevNatVal, ct_flags};
use crate::store::MapsSnapshot;

/// How long an idle flow is kept, by state (Cilium's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtTimeouts {
    /// A TCP flow that has seen replies and no FIN/RST.
    pub tcp_established_secs: u32,
    /// A TCP flow that has seen no reply yet.
    pub tcp_syn_secs: u32,
    /// A TCP flow that has seen FIN or RST.
    pub tcp_closing_secs: u32,
    /// UDP.
    pub other_secs: u32,
}

impl Default for CtTimeouts {
    fn default() -> Self {
        CtTimeouts {
            tcp_established_secs: 21_600,
            tcp_syn_secs: 60,
            tcp_closing_secs: 10,
            other_secs: 60,
        }
    }
}

/// What one GC pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Entries looked at.
    pub scanned: usize,
    /// Entries deleted.
    pub deleted: usize,
    /// Flows (forward entries) kept.
    pub flows_kept: usize,
    /// Draining backends deleted because no flow used them any more.
    pub backends_released: usize,
}

/// The decision of a pass: what to delete and which backends are still in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcDecision {
    /// Entries to delete.
    pub delete: Vec<CtKey>,
    /// Backend ids of the flows kept.
    pub backends_in_use: HashSet<u32>,
    /// Flows kept.
    pub flows_kept: usize,
}

/// The reverse entry's key of a forward entry, if its backend is known.
fn rev_key_of(k: &CtKey, v: &CtVal, backends: &HashMap<u32, BackendVal>) -> Option<CtKey> {
    let b = backends.get(&v.backend_id)?;
    let (daddr, dport) = if v.flags & ct_flags::SNAT != 0 {
        (v.nat_addr, v.nat_port())
    } else {
        (k.saddr, k.sport())
    };
    Some(CtKey::new(b.addr, b.port(), daddr, dport, k.proto, CT_REV))
}

/// The forward entry's key of a reverse entry, if its frontend is known.
fn fwd_key_of(k: &CtKey, v: &CtVal, rev_nat: &HashMap<u16, RevNatVal>) -> Option<CtKey> {
    let rn = rev_nat.get(&v.rev_nat_id)?;
    Some(CtKey::new(
        v.nat_addr,
        v.nat_port(),
        rn.addr,
        rn.port(),
        k.proto,
        CT_FWD,
    ))
}

fn timeout(proto: u8, flags: u16, seen_reply: bool, t: &CtTimeouts) -> u32 {
    if proto != 6 {
        t.other_secs
    } else if flags & ct_flags::CLOSING != 0 {
        t.tcp_closing_secs
    } else if !seen_reply {
        t.tcp_syn_secs
    } else {
        t.tcp_established_secs
    }
}

/// Decides a pass over `entries` at `now` (seconds of CLOCK_MONOTONIC, as the programs
/// stamp), with the service maps for pairing entries.
pub fn decide(
    entries: &[(CtKey, CtVal)],
    snap: &MapsSnapshot,
    now: u32,
    t: &CtTimeouts,
) -> GcDecision {
    let backends: HashMap<u32, BackendVal> = snap.backends.iter().copied().collect();
    let rev_nat: HashMap<u16, RevNatVal> = snap.rev_nat.iter().copied().collect();
    let by_key: HashMap<CtKey, CtVal> = entries.iter().copied().collect();
    let mut d = GcDecision::default();
    let mut paired: HashSet<CtKey> = HashSet::new();
    let idle = |last: u32| now.saturating_sub(last);

    for (k, v) in entries.iter().filter(|(k, _)| k.dir == CT_FWD) {
        let rk = rev_key_of(k, v, &backends);
        let rev = rk.and_then(|rk| by_key.get(&rk).map(|rv| (rk, *rv)));
        let (last, flags, seen) = match &rev {
            Some((_, rv)) => (
                v.last_seen.max(rv.last_seen),
                v.flags | rv.flags,
                rv.flags & ct_flags::SEEN != 0,
            ),
            None => (v.last_seen, v.flags, false),
        };
        if let Some((rk, _)) = rev {
            paired.insert(rk);
        }
        if idle(last) > timeout(k.proto, flags, seen, t) {
            d.delete.push(*k);
            if let Some((rk, _)) = rev {
                d.delete.push(rk);
            }
        } else {
            d.flows_kept += 1;
            d.backends_in_use.insert(v.backend_id);
        }
    }
    // Reverse entries without their forward entry (the flow chose again, or LRU evicted
    // it): kept only while they see packets.
    for (k, v) in entries.iter().filter(|(k, _)| k.dir == CT_REV) {
        if paired.contains(k) {
            continue;
        }
        let has_fwd = fwd_key_of(k, v, &rev_nat).is_some_and(|fk| by_key.contains_key(&fk));
        if has_fwd {
            // Its forward entry points elsewhere now; it is stale.
            d.delete.push(*k);
            continue;
        }
        let seen = v.flags & ct_flags::SEEN != 0;
        if idle(v.last_seen) > timeout(k.proto, v.flags, seen, t) {
            d.delete.push(*k);
        } else {
            d.backends_in_use.insert(v.backend_id);
        }
    }
    d
}

/// Seconds of CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_secs() -> u32 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{LbAddr, SvcKey};
    use std::net::IpAddr;

    fn a(s: &str) -> LbAddr {
        LbAddr::from(s.parse::<IpAddr>().unwrap())
    }

    fn snap() -> MapsSnapshot {
        MapsSnapshot {
            services: vec![(
                SvcKey::new(a("172.16.1.1"), 80, 6, 0, 0),
                Default::default(),
            )],
            backends: vec![(7, BackendVal::new(a("10.0.0.7"), 8080, 6, 0))],
            rev_nat: vec![(1, RevNatVal::new(a("172.16.1.1"), 80))],
        }
    }

    /// A forward and reverse entry of a client's flow to 172.16.1.1:80 on backend 7.
    fn flow(last_fwd: u32, last_rev: u32, rev_flags: u16, snat: bool) -> Vec<(CtKey, CtVal)> {
        let fk = CtKey::new(a("192.168.1.5"), 40000, a("172.16.1.1"), 80, 6, CT_FWD);
        let mut fv = CtVal {
            backend_id: 7,
            rev_nat_id: 1,
            last_seen: last_fwd,
            ..Default::default()
        };
        let (rd, rp) = if snat {
            fv.flags = ct_flags::SNAT;
            fv.nat_addr = a("192.168.10.100");
            fv.nat_port_be = 61000u16.to_be();
            (a("192.168.10.100"), 61000)
        } else {
            (a("192.168.1.5"), 40000)
        };
        let rk = CtKey::new(a("10.0.0.7"), 8080, rd, rp, 6, CT_REV);
        let rv = CtVal {
            nat_addr: a("192.168.1.5"),
            nat_port_be: 40000u16.to_be(),
            rev_nat_id: 1,
            backend_id: 7,
            last_seen: last_rev,
            flags: rev_flags | fv.flags,
            ..Default::default()
        };
        vec![(fk, fv), (rk, rv)]
    }

    #[test]
    fn an_established_flow_is_kept_and_its_backend_is_in_use() {
        for snat in [false, true] {
            let d = decide(
                &flow(1000, 1000, ct_flags::SEEN, snat),
                &snap(),
                5000,
                &CtTimeouts::default(),
            );
            assert!(d.delete.is_empty(), "snat={snat}");
            assert_eq!(d.flows_kept, 1);
            assert!(d.backends_in_use.contains(&7));
        }
    }

    #[test]
    fn a_closing_flow_expires_after_ten_idle_seconds_with_both_entries() {
        let e = flow(1000, 1000, ct_flags::SEEN | ct_flags::CLOSING, true);
        let t = CtTimeouts::default();
        assert!(decide(&e, &snap(), 1010, &t).delete.is_empty());
        let d = decide(&e, &snap(), 1011, &t);
        assert_eq!(d.delete.len(), 2);
        assert!(d.backends_in_use.is_empty());
    }

    #[test]
    fn a_flow_without_reply_expires_after_the_syn_timeout() {
        let e = flow(1000, 1000, 0, false);
        assert_eq!(
            decide(&e, &snap(), 1061, &CtTimeouts::default())
                .delete
                .len(),
            2
        );
    }

    #[test]
    fn the_newer_of_the_two_entries_keeps_the_flow() {
        // Only replies lately (a download): the forward entry is old, the pair lives on.
        let e = flow(0, 20_000, ct_flags::SEEN, false);
        assert!(
            decide(&e, &snap(), 21_000, &CtTimeouts::default())
                .delete
                .is_empty()
        );
    }

    #[test]
    fn udp_flows_expire_after_a_minute() {
        let mut e = flow(1000, 1000, ct_flags::SEEN, false);
        for (k, _) in &mut e {
            k.proto = 17;
        }
        let mut s = snap();
        s.backends[0].1.proto = 17;
        assert!(
            decide(&e, &s, 1060, &CtTimeouts::default())
                .delete
                .is_empty()
        );
        assert_eq!(decide(&e, &s, 1061, &CtTimeouts::default()).delete.len(), 2);
    }

    #[test]
    fn a_reverse_entry_whose_flow_chose_another_backend_is_deleted() {
        let mut e = flow(1000, 1000, ct_flags::SEEN, false);
        // The forward entry now names backend 8 (chosen again after 7 went away).
        e[0].1.backend_id = 8;
        let d = decide(&e, &snap(), 1001, &CtTimeouts::default());
        assert_eq!(d.delete, vec![e[1].0]);
    }
}
