//! Export rules: what a route looks like when sent to a given peer, or whether it is sent at
//! all (RFC 4271 §5, §9.1.3, §9.2; RFC 1997; RFC 4456; RFC 8950).
//!
//! - Never back to the peer it came from; never to an external peer whose AS is already in
//!   the path (it would drop it); NO_ADVERTISE to nobody, NO_EXPORT and NO_EXPORT_SUBCONFED
//!   to no external peer.
//! - Routes learnt from an internal peer go to internal peers only by route reflection: when
//!   the source or the target is a client; ORIGINATOR_ID and CLUSTER_LIST are set then.
//! - To an external peer: our AS prepended, next hop self, no LOCAL_PREF, MED only on our own
//!   routes, no ORIGINATOR_ID or CLUSTER_LIST.
//! - To an internal peer: LOCAL_PREF (the route's, or the default), next hop unchanged for
//!   learnt routes unless next-hop-self.
//! - Next hops per family: an IPv4 address for IPv4 prefixes, or an IPv6 one where extended
//!   next hop was negotiated (preferred on an IPv6 session); an IPv6 address for IPv6
//!   prefixes, never an IPv4-mapped one. No usable next hop: the route is not sent.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::attrs::Attrs;
use crate::wire::{AsPath, Community, Family, NextHop};

/// Where a route came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub(crate) peer: u16,
    pub(crate) ebgp: bool,
    pub(crate) rr_client: bool,
    pub(crate) router_id: Ipv4Addr,
}

/// The peer a route would go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) peer: u16,
    pub(crate) ebgp: bool,
    pub(crate) peer_as: u32,
    pub(crate) rr_client: bool,
    pub(crate) next_hop_self: bool,
    /// Our IPv4 address toward the peer (the session's, or configured).
    pub(crate) nh4: Option<Ipv4Addr>,
    /// Our IPv6 global address toward the peer, and link-local where known.
    pub(crate) nh6: Option<(Ipv6Addr, Option<Ipv6Addr>)>,
    /// Extended next hop negotiated for IPv4 unicast.
    pub(crate) ext_nh_v4: bool,
    /// The session runs over IPv6 (then IPv4 prefixes prefer an IPv6 next hop, with ENH).
    pub(crate) ipv6_session: bool,
}

/// Instance-wide settings the rules need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local {
    pub(crate) asn: u32,
    pub(crate) router_id: Ipv4Addr,
    pub(crate) cluster_id: Ipv4Addr,
    pub(crate) default_local_pref: u32,
}

/// The route as sent to `t`, or `None` if it is not sent. `for_receiver`: the attributes are
/// the ones a peer's export policy gives our route, meant for the receiver to act on, so
/// the well-known communities do not stop it here.
pub(crate) fn export(
    a: &Attrs,
    src: &Source,
    t: &Target,
    family: Family,
    l: &Local,
    for_receiver: bool,
) -> Option<Attrs> {
    let local = src.peer == 0;
    if !local && src.peer == t.peer {
        return None;
    }
    let comms = &a.path.communities;
    if !for_receiver && comms.contains(&Community::NO_ADVERTISE) {
        return None;
    }
    if !for_receiver
        && t.ebgp
        && (comms.contains(&Community::NO_EXPORT)
            || comms.contains(&Community::NO_EXPORT_SUBCONFED))
    {
        return None;
    }
    let reflect = !local && !src.ebgp && !t.ebgp;
    if reflect && !(src.rr_client || t.rr_client) {
        return None;
    }
    if t.ebgp
        && a.path
            .as_path
            .as_ref()
            .is_some_and(|p| p.contains(t.peer_as))
    {
        return None;
    }
    let mut path = a.path.to_pass_on();
    path.next_hop = None;
    path.as4_path = None;
    path.as4_aggregator = None;
    if t.ebgp {
        let p = path.as_path.take().unwrap_or_else(AsPath::empty);
        path.as_path = Some(p.prepended(l.asn));
        path.local_pref = None;
        if !local {
            path.med = None;
        }
        path.originator_id = None;
        path.cluster_list.clear();
    } else {
        if path.as_path.is_none() {
            path.as_path = Some(AsPath::empty());
        }
        if local || src.ebgp {
            path.local_pref = Some(
                path.local_pref
                    .filter(|_| local)
                    .unwrap_or(l.default_local_pref),
            );
        } else if path.local_pref.is_none() {
            path.local_pref = Some(l.default_local_pref);
        }
        if reflect {
            if path.originator_id.is_none() {
                path.originator_id = Some(src.router_id);
            }
            path.cluster_list.insert(0, l.cluster_id);
        }
    }
    let keep = !t.ebgp && !t.next_hop_self && !local;
    let explicit = if local { a.next_hop } else { None };
    let next_hop = match (keep, explicit) {
        (true, _) => a
            .next_hop
            .filter(|nh| fits(*nh, family, t))
            .or_else(|| self_next_hop(family, t)),
        (false, Some(nh)) if fits(nh, family, t) => Some(nh),
        _ => self_next_hop(family, t),
    }?;
    Some(Attrs {
        path,
        next_hop: Some(next_hop),
    })
}

/// Whether a next hop can be sent with prefixes of `family` to `t`.
fn fits(nh: NextHop, family: Family, t: &Target) -> bool {
    match (family.is_ipv6(), nh) {
        (false, NextHop::Ipv4(a)) => !a.is_unspecified(),
        (false, NextHop::Ipv6 { global, .. }) => t.ext_nh_v4 && global.to_ipv4_mapped().is_none(),
        (true, NextHop::Ipv6 { global, .. }) => {
            global.to_ipv4_mapped().is_none() && !global.is_unspecified()
        }
        (true, NextHop::Ipv4(_)) => false,
    }
}

/// Our own next hop for `family` toward `t`.
fn self_next_hop(family: Family, t: &Target) -> Option<NextHop> {
    let v6 = t
        .nh6
        .map(|(global, link_local)| NextHop::Ipv6 { global, link_local });
    if family.is_ipv6() {
        return v6;
    }
    let v4 = t.nh4.map(NextHop::Ipv4);
    if t.ext_nh_v4 && (t.ipv6_session || v4.is_none()) {
        v6.or(v4)
    } else {
        v4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, PathAttributes};

    const ME: Local = Local {
        asn: 65001,
        router_id: Ipv4Addr::new(1, 1, 1, 1),
        cluster_id: Ipv4Addr::new(1, 1, 1, 1),
        default_local_pref: 100,
    };

    fn target(ebgp: bool) -> Target {
        Target {
            peer: 2,
            ebgp,
            peer_as: if ebgp { 65000 } else { 65001 },
            rr_client: false,
            next_hop_self: false,
            nh4: Some(Ipv4Addr::new(192, 168, 10, 100)),
            nh6: Some(("fd00::100".parse().unwrap(), None)),
            ext_nh_v4: false,
            ipv6_session: false,
        }
    }

    fn local_route() -> Attrs {
        Attrs {
            path: PathAttributes::new(Origin::Igp, AsPath::empty())
                .with_med(10)
                .with_local_pref(200),
            next_hop: None,
        }
    }

    const LOCAL_SRC: Source = Source {
        peer: 0,
        ebgp: false,
        rr_client: false,
        router_id: Ipv4Addr::new(1, 1, 1, 1),
    };

    #[test]
    fn to_an_external_peer_our_as_is_prepended_the_next_hop_is_ours_and_local_pref_goes() {
        let out = export(
            &local_route(),
            &LOCAL_SRC,
            &target(true),
            Family::IPV4_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert_eq!(out.path.as_path, Some(AsPath::sequence([65001])));
        assert_eq!(out.path.local_pref, None);
        assert_eq!(out.path.med, Some(10));
        assert_eq!(
            out.next_hop,
            Some(NextHop::Ipv4(Ipv4Addr::new(192, 168, 10, 100)))
        );
    }

    #[test]
    fn to_an_internal_peer_local_pref_is_sent_and_the_path_stays_empty() {
        let out = export(
            &local_route(),
            &LOCAL_SRC,
            &target(false),
            Family::IPV4_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert_eq!(out.path.as_path, Some(AsPath::empty()));
        assert_eq!(out.path.local_pref, Some(200));
    }

    #[test]
    fn internal_routes_are_reflected_only_to_or_from_clients() {
        let learnt = Attrs {
            path: PathAttributes::new(Origin::Igp, AsPath::sequence([65100])).with_local_pref(120),
            next_hop: Some(NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 9))),
        };
        let src = Source {
            peer: 3,
            ebgp: false,
            rr_client: false,
            router_id: Ipv4Addr::new(9, 9, 9, 9),
        };
        assert!(
            export(
                &learnt,
                &src,
                &target(false),
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
        let mut client = target(false);
        client.rr_client = true;
        let out = export(&learnt, &src, &client, Family::IPV4_UNICAST, &ME, false).unwrap();
        assert_eq!(out.path.originator_id, Some(Ipv4Addr::new(9, 9, 9, 9)));
        assert_eq!(out.path.cluster_list, vec![ME.cluster_id]);
        assert_eq!(out.next_hop, learnt.next_hop, "next hop unchanged on iBGP");
        assert_eq!(out.path.local_pref, Some(120));
    }

    #[test]
    fn no_export_stays_inside_the_as_and_no_advertise_goes_nowhere() {
        let mut r = local_route();
        r.path.communities = vec![Community::NO_EXPORT];
        assert!(
            export(
                &r,
                &LOCAL_SRC,
                &target(true),
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
        assert!(
            export(
                &r,
                &LOCAL_SRC,
                &target(false),
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_some()
        );
        r.path.communities = vec![Community::NO_ADVERTISE];
        assert!(
            export(
                &r,
                &LOCAL_SRC,
                &target(false),
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
    }

    #[test]
    fn well_known_communities_a_policy_gives_our_route_go_to_the_receiver() {
        let mut r = local_route();
        r.path.communities = vec![Community::NO_EXPORT, Community::NO_ADVERTISE];
        let out = export(
            &r,
            &LOCAL_SRC,
            &target(true),
            Family::IPV4_UNICAST,
            &ME,
            true,
        )
        .unwrap();
        assert_eq!(
            out.path.communities,
            vec![Community::NO_EXPORT, Community::NO_ADVERTISE]
        );
    }

    #[test]
    fn ipv6_prefixes_get_an_ipv6_next_hop_and_never_a_mapped_one() {
        let out = export(
            &local_route(),
            &LOCAL_SRC,
            &target(true),
            Family::IPV6_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert_eq!(
            out.next_hop,
            Some(NextHop::Ipv6 {
                global: "fd00::100".parse().unwrap(),
                link_local: None
            })
        );
        let mut t = target(true);
        t.nh6 = None;
        assert!(
            export(
                &local_route(),
                &LOCAL_SRC,
                &t,
                Family::IPV6_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
        // An explicit IPv4 next hop on an IPv6 prefix is not mapped: ours is used instead.
        let mut r = local_route();
        r.next_hop = Some(NextHop::Ipv4(Ipv4Addr::new(10, 1, 1, 1)));
        let out = export(
            &r,
            &LOCAL_SRC,
            &target(true),
            Family::IPV6_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert!(matches!(out.next_hop, Some(NextHop::Ipv6 { .. })));
    }

    #[test]
    fn ipv4_prefixes_take_an_ipv6_next_hop_on_an_ipv6_session_with_extended_next_hop() {
        let mut t = target(true);
        t.ipv6_session = true;
        let out = export(
            &local_route(),
            &LOCAL_SRC,
            &t,
            Family::IPV4_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert!(
            matches!(out.next_hop, Some(NextHop::Ipv4(_))),
            "no ENH: IPv4 next hop"
        );
        t.ext_nh_v4 = true;
        let out = export(
            &local_route(),
            &LOCAL_SRC,
            &t,
            Family::IPV4_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert!(matches!(out.next_hop, Some(NextHop::Ipv6 { .. })));
        t.ext_nh_v4 = false;
        t.nh4 = None;
        assert!(
            export(
                &local_route(),
                &LOCAL_SRC,
                &t,
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
    }

    #[test]
    fn an_ipv6_next_hop_of_an_ipv4_route_is_not_passed_to_a_peer_without_extended_next_hop() {
        let learnt = Attrs {
            path: PathAttributes::new(Origin::Igp, AsPath::sequence([65000])),
            next_hop: Some(NextHop::Ipv6 {
                global: "fd00::1".parse().unwrap(),
                link_local: None,
            }),
        };
        let src = Source {
            peer: 3,
            ebgp: true,
            rr_client: false,
            router_id: Ipv4Addr::new(9, 9, 9, 9),
        };
        let out = export(
            &learnt,
            &src,
            &target(false),
            Family::IPV4_UNICAST,
            &ME,
            false,
        )
        .unwrap();
        assert_eq!(
            out.next_hop,
            Some(NextHop::Ipv4(Ipv4Addr::new(192, 168, 10, 100)))
        );
        let mut enh = target(false);
        enh.ext_nh_v4 = true;
        let out = export(&learnt, &src, &enh, Family::IPV4_UNICAST, &ME, false).unwrap();
        assert_eq!(out.next_hop, learnt.next_hop);
    }

    #[test]
    fn a_route_is_not_sent_back_to_its_peer_nor_to_an_as_in_its_path() {
        let learnt = Attrs {
            path: PathAttributes::new(Origin::Igp, AsPath::sequence([65000])),
            next_hop: Some(NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 9))),
        };
        let src = Source {
            peer: 2,
            ebgp: true,
            rr_client: false,
            router_id: Ipv4Addr::new(9, 9, 9, 9),
        };
        assert!(
            export(
                &learnt,
                &src,
                &target(true),
                Family::IPV4_UNICAST,
                &ME,
                false
            )
            .is_none()
        );
        let mut other = target(true);
        other.peer = 5;
        assert!(export(&learnt, &src, &other, Family::IPV4_UNICAST, &ME, false).is_none());
        other.peer_as = 65100;
        let out = export(&learnt, &src, &other, Family::IPV4_UNICAST, &ME, false).unwrap();
        assert_eq!(out.path.as_path, Some(AsPath::sequence([65001, 65000])));
        assert_eq!(out.path.med, None);
    }
}
