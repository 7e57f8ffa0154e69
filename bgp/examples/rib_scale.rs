//! Feeds a full-table-sized load through the RIB and prints the time and memory it took:
//! 1,000,000 IPv4 and 200,000 IPv6 prefixes, received from one peer as packed UPDATEs
//! (decoded with the real codec), then exported to a second peer (packed UPDATEs again).
//!
//! `cargo run --release -p bgp --example rib_scale [IPV4 IPV6 ATTR_SETS]`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bgp::rib::{PeerSession, PeerSettings, Rib, RibConfig};
use bgp::wire::{
    Announce, AsPath, Community, DecodeContext, EncodeContext, Family, FamilySet, Message, NextHop,
    Nlri, Origin, PathAttributes, pack_updates,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n4 = args.first().copied().unwrap_or(1_000_000);
    let n6 = args.get(1).copied().unwrap_or(200_000);
    let sets = args.get(2).copied().unwrap_or(10_000).max(1);
    let ctx = EncodeContext {
        four_octet_as: true,
        families: FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        ..EncodeContext::default()
    };
    let dctx: DecodeContext = ctx.mirror();
    // The UPDATEs a peer would send: prefixes spread over `sets` attribute sets.
    let t = Instant::now();
    let mut wire = Vec::new();
    let per_set4 = n4.div_ceil(sets);
    let per_set6 = n6.div_ceil(sets);
    for s in 0..sets {
        let attrs = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence([65000, 64512 + (s as u32 % 400), 4_200_000_000 + s as u32]),
        )
        .with_med(s as u32)
        .with_communities([Community::new(65000, (s % 65535) as u16)]);
        let v4: Vec<Nlri> = (s * per_set4..((s + 1) * per_set4).min(n4))
            .map(|i| {
                let a = Ipv4Addr::from(0x0100_0000u32 + (i as u32) * 256);
                Nlri::new(IpNet::V4(Ipv4Net::new(a, 24).unwrap_or_default()))
            })
            .collect();
        let v6: Vec<Nlri> = (s * per_set6..((s + 1) * per_set6).min(n6))
            .map(|i| {
                let a = Ipv6Addr::from((0x2001_0db8u128 << 96) | ((i as u128) << 64));
                Nlri::new(IpNet::V6(Ipv6Net::new(a, 64).unwrap_or_default()))
            })
            .collect();
        let nh4 = NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1));
        let nh6 = NextHop::Ipv6 {
            global: "2001:db8::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            link_local: None,
        };
        if !v4.is_empty() {
            let a = Announce {
                attributes: &attrs,
                next_hop: nh4,
                nlri: &v4,
            };
            wire.extend(pack_updates(&ctx, Family::IPV4_UNICAST, Some(a), &[]).unwrap_or_default());
        }
        if !v6.is_empty() {
            let a = Announce {
                attributes: &attrs,
                next_hop: nh6,
                nlri: &v6,
            };
            wire.extend(pack_updates(&ctx, Family::IPV6_UNICAST, Some(a), &[]).unwrap_or_default());
        }
    }
    let bytes: usize = wire.iter().map(|b| b.len()).sum();
    println!(
        "built {} UPDATEs ({:.1} MB) for {n4} IPv4 + {n6} IPv6 prefixes in {sets} attribute sets in {:.2} s",
        wire.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let base = rss_mib();
    let mut rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(192, 168, 0, 1)));
    let session = |asn, id: [u8; 4]| PeerSession {
        ebgp: true,
        peer_as: asn,
        router_id: Ipv4Addr::from(id),
        families: ctx.families,
        encode: ctx,
        next_hop_v4: Some(Ipv4Addr::new(192, 168, 0, 1)),
        next_hop_v6: Some((
            "2001:db8::ffff".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            None,
        )),
        ipv6_session: false,
    };
    let src = rib.add_peer(PeerSettings::new(IpAddr::from([10, 0, 0, 1])));
    rib.peer_up(src, session(65000, [10, 0, 0, 1]));
    let t = Instant::now();
    let mut count = 0usize;
    for b in &wire {
        if let Ok(Message::Update(u)) = Message::decode(b, &dctx) {
            count += u.announced_routes().count();
            rib.apply_update(src, &u);
        }
    }
    let load = t.elapsed();
    let after_load = rss_mib();
    println!(
        "decoded and applied {count} prefixes in {:.2} s ({:.2} M prefixes/s); Loc-RIB {} + {} prefixes, {} attribute sets; RSS +{:.1} MiB ({:.0} octets per prefix)",
        load.as_secs_f64(),
        count as f64 / load.as_secs_f64() / 1e6,
        rib.len(Family::IPV4_UNICAST),
        rib.len(Family::IPV6_UNICAST),
        rib.attribute_sets(),
        after_load - base,
        (after_load - base) * 1024.0 * 1024.0 / count.max(1) as f64
    );
    // Export the whole table to a second peer.
    let dst = rib.add_peer(PeerSettings::new(IpAddr::from([10, 0, 0, 2])));
    rib.peer_up(dst, session(65002, [10, 0, 0, 2]));
    let t = Instant::now();
    let (mut msgs, mut out_bytes) = (0usize, 0usize);
    loop {
        let m = rib.take_updates(dst, 8192).unwrap_or_default();
        if m.is_empty() {
            break;
        }
        msgs += m.len();
        out_bytes += m.iter().map(|b| b.len()).sum::<usize>();
    }
    let export = t.elapsed();
    println!(
        "exported the table to a second peer in {:.2} s: {msgs} UPDATEs ({:.1} MB), Adj-RIB-Out {} + {}; RSS now +{:.1} MiB",
        export.as_secs_f64(),
        out_bytes as f64 / 1e6,
        rib.advertised_count(dst, Family::IPV4_UNICAST),
        rib.advertised_count(dst, Family::IPV6_UNICAST),
        rss_mib() - base
    );
    let t = Instant::now();
    rib.peer_down(src, FamilySet::EMPTY);
    let mut withdrawn = 0usize;
    loop {
        let m = rib.take_updates(dst, 8192).unwrap_or_default();
        if m.is_empty() {
            break;
        }
        withdrawn += m.len();
    }
    println!(
        "source peer down: table removed and withdrawn from the second peer in {:.2} s ({withdrawn} UPDATEs)",
        t.elapsed().as_secs_f64()
    );
}
