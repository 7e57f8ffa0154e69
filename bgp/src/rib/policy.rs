//! Per-peer export policy: which routes one peer is sent, applied in its Adj-RIB-Out.
//!
//! Cilium's model is per peer: each peer's families select their own advertisements, so two
//! peers of one instance may receive different prefixes with different attributes. The
//! instance originates the union (that is what the Loc-RIB shows); each peer's
//! [`ExportPolicy`] then says which of our prefixes it gets and with which attributes, and
//! whether routes learnt from other peers are passed on at all (a Kubernetes node is not a
//! transit router). Changing a policy re-examines that peer's Adj-RIB-Out in place: only the
//! prefixes whose outcome changed are announced or withdrawn, and the session stays up.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::attrs::Attrs;

/// What one peer is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportPolicy {
    /// Pass routes learnt from other peers on to this one. `true` is a plain BGP router's
    /// behaviour (the default); lbspeaker's daemon sets `false`: only our own routes leave.
    pub learned: bool,
    /// Our own routes this peer is sent, each with the attributes it gets (as originated,
    /// before the export rules add our AS and next hop). `None`: every route of ours, with
    /// the attributes it was announced with. A prefix listed here is sent only while the
    /// instance also originates it.
    pub local: Option<Arc<BTreeMap<IpNet, Attrs>>>,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        ExportPolicy {
            learned: true,
            local: None,
        }
    }
}

impl ExportPolicy {
    /// The attributes to export our prefix `prefix` with: `Some(None)` means "as announced",
    /// `Some(Some(a))` these attributes, `None` not at all.
    pub(crate) fn local_route(&self, prefix: &IpNet) -> Option<Option<&Attrs>> {
        match &self.local {
            None => Some(None),
            Some(map) => map.get(prefix).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::{drain, net, peer, rib, update};
    use super::*;
    use crate::rib::{PeerSettings, Rib};
    use crate::wire::{AsPath, Community, Family, Message, Origin, PathAttributes};

    fn attrs_with(c: Option<Community>, local_pref: Option<u32>) -> Attrs {
        let mut path = PathAttributes::new(Origin::Igp, AsPath::empty());
        path.communities = c.into_iter().collect();
        path.local_pref = local_pref;
        Attrs {
            path,
            next_hop: None,
        }
    }

    fn policy(routes: &[(&str, Attrs)], learned: bool) -> ExportPolicy {
        ExportPolicy {
            learned,
            local: Some(Arc::new(
                routes.iter().map(|(p, a)| (net(p), a.clone())).collect(),
            )),
        }
    }

    fn with_policy(r: &mut Rib, idx: crate::rib::PeerIdx, addr: [u8; 4], p: ExportPolicy) {
        let mut s = PeerSettings::new(std::net::IpAddr::from(addr));
        s.export = p;
        r.update_peer_settings(idx, s);
    }

    fn announced(msgs: &[Message]) -> Vec<(String, Vec<Community>)> {
        let mut v = Vec::new();
        for m in msgs {
            if let Message::Update(u) = m {
                for n in &u.nlri {
                    v.push((n.prefix.to_string(), u.attributes.communities.clone()));
                }
            }
        }
        v.sort();
        v
    }

    fn withdrawn(msgs: &[Message]) -> Vec<String> {
        let mut v: Vec<String> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Update(u) => Some(u.withdrawn.iter().map(|n| n.prefix.to_string())),
                _ => None,
            })
            .flatten()
            .collect();
        v.sort();
        v
    }

    #[test]
    fn two_peers_of_one_instance_receive_different_prefixes_and_communities() {
        let mut r = rib(1);
        r.announce(net("172.20.0.0/24"), attrs_with(None, None));
        r.announce(net("172.16.1.1/32"), attrs_with(None, None));
        let a = peer(&mut r, [192, 168, 10, 200], true, 65000);
        let b = peer(&mut r, [192, 168, 10, 201], true, 65010);
        with_policy(
            &mut r,
            a,
            [192, 168, 10, 200],
            policy(&[("172.20.0.0/24", attrs_with(None, None))], false),
        );
        with_policy(
            &mut r,
            b,
            [192, 168, 10, 201],
            policy(
                &[
                    (
                        "172.16.1.1/32",
                        attrs_with(Some(Community::new(65001, 7)), None),
                    ),
                    (
                        "172.20.0.0/24",
                        attrs_with(Some(Community::NO_EXPORT), None),
                    ),
                ],
                false,
            ),
        );
        let to_a = drain(&mut r, a);
        let to_b = drain(&mut r, b);
        assert_eq!(announced(&to_a), [("172.20.0.0/24".into(), vec![])]);
        // NO_EXPORT given by the policy is for the receiver: sent, tagged.
        assert_eq!(
            announced(&to_b),
            [
                ("172.16.1.1/32".into(), vec![Community::new(65001, 7)]),
                ("172.20.0.0/24".into(), vec![Community::NO_EXPORT])
            ]
        );
        assert_eq!(r.advertised_count(a, Family::IPV4_UNICAST), 1);
        assert_eq!(r.advertised_count(b, Family::IPV4_UNICAST), 2);
    }

    #[test]
    fn a_policy_change_sends_only_what_changed_to_that_peer_and_nothing_to_the_others() {
        let mut r = rib(1);
        r.announce(net("172.20.0.0/24"), attrs_with(None, None));
        r.announce(net("172.16.1.1/32"), attrs_with(None, None));
        let a = peer(&mut r, [192, 168, 10, 200], true, 65000);
        let b = peer(&mut r, [192, 168, 10, 201], true, 65010);
        let only_pod = policy(&[("172.20.0.0/24", attrs_with(None, None))], false);
        with_policy(&mut r, a, [192, 168, 10, 200], only_pod.clone());
        with_policy(&mut r, b, [192, 168, 10, 201], only_pod);
        drain(&mut r, a);
        drain(&mut r, b);
        // Peer a now also gets the service, with a community; its PodCIDR is unchanged.
        with_policy(
            &mut r,
            a,
            [192, 168, 10, 200],
            policy(
                &[
                    ("172.20.0.0/24", attrs_with(None, None)),
                    (
                        "172.16.1.1/32",
                        attrs_with(Some(Community::new(65001, 9)), None),
                    ),
                ],
                false,
            ),
        );
        let to_a = drain(&mut r, a);
        assert_eq!(
            announced(&to_a),
            [("172.16.1.1/32".into(), vec![Community::new(65001, 9)])],
            "only the new prefix goes out"
        );
        assert!(drain(&mut r, b).is_empty(), "peer b is not touched");
        // Taking the PodCIDR away from a withdraws it there.
        with_policy(
            &mut r,
            a,
            [192, 168, 10, 200],
            policy(
                &[(
                    "172.16.1.1/32",
                    attrs_with(Some(Community::new(65001, 9)), None),
                )],
                false,
            ),
        );
        let to_a = drain(&mut r, a);
        assert_eq!(withdrawn(&to_a), ["172.20.0.0/24"]);
        assert!(announced(&to_a).is_empty());
    }

    #[test]
    fn routes_learnt_from_one_peer_are_not_passed_to_another_unless_allowed() {
        let mut r = rib(1);
        let tor = peer(&mut r, [192, 168, 10, 200], true, 65000);
        let other = peer(&mut r, [192, 168, 10, 201], true, 65010);
        drain(&mut r, other);
        r.apply_update(tor, &update(&["10.10.1.0/24"], &[65000], |_| {}));
        with_policy(
            &mut r,
            other,
            [192, 168, 10, 201],
            ExportPolicy {
                learned: false,
                local: None,
            },
        );
        let sent = drain(&mut r, other);
        assert!(announced(&sent).is_empty(), "{sent:?}");
        assert_eq!(r.advertised_count(other, Family::IPV4_UNICAST), 0);
        // A transit peer gets it.
        with_policy(&mut r, other, [192, 168, 10, 201], ExportPolicy::default());
        let sent = drain(&mut r, other);
        assert_eq!(announced(&sent), [("10.10.1.0/24".into(), vec![])]);
    }

    #[test]
    fn a_listed_prefix_the_instance_does_not_originate_is_not_sent() {
        let mut r = rib(1);
        let a = peer(&mut r, [192, 168, 10, 200], true, 65000);
        with_policy(
            &mut r,
            a,
            [192, 168, 10, 200],
            policy(&[("172.20.0.0/24", attrs_with(None, None))], false),
        );
        assert!(announced(&drain(&mut r, a)).is_empty());
        r.announce(net("172.20.0.0/24"), attrs_with(None, None));
        assert_eq!(
            announced(&drain(&mut r, a)),
            [("172.20.0.0/24".into(), vec![])]
        );
    }

    #[test]
    fn an_internal_peer_gets_the_local_preference_of_its_policy() {
        let mut r = rib(1);
        r.announce(net("172.20.0.0/24"), attrs_with(None, Some(100)));
        let ibgp = peer(&mut r, [192, 168, 10, 200], false, 65001);
        with_policy(
            &mut r,
            ibgp,
            [192, 168, 10, 200],
            policy(&[("172.20.0.0/24", attrs_with(None, Some(250)))], false),
        );
        let msgs = drain(&mut r, ibgp);
        let lp: Vec<Option<u32>> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Update(u) if !u.nlri.is_empty() => Some(u.attributes.local_pref),
                _ => None,
            })
            .collect();
        assert_eq!(lp, [Some(250)]);
    }
}
