//! The routes the workloads send and originate: full tables for the generators (packed
//! UPDATEs built once with the project's own codec), the flapping prefixes of the churn
//! workload, and the service addresses of workload 1.
//!
//! Address plan (nothing here overlaps the labs' own 10.0.0.0/16 links):
//! - IPv4 table: the `i`-th /24 from 20.0.0.0 (1,000,000 of them end at 35.66.63.0/24);
//! - IPv6 table: the `i`-th /48 under 2a00::/16;
//! - service addresses: 10.96.0.1 upward, 250 to a /24 (no .0 or .255).

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::{
    Announce, AsPath, Community, EncodeContext, Family, NextHop, Nlri, Origin, PathAttributes,
    pack_updates,
};
use bytes::Bytes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::BenchError;

/// The `i`-th IPv4 /24 of the tables.
pub fn v4_prefix(i: usize) -> IpNet {
    let a = Ipv4Addr::from(0x1400_0000u32.wrapping_add((i as u32) << 8));
    IpNet::V4(Ipv4Net::new(a, 24).unwrap_or_default())
}

/// The `i`-th IPv6 /48 of the tables.
pub fn v6_prefix(i: usize) -> IpNet {
    let a = Ipv6Addr::from((0x2a00u128 << 112) | ((i as u128) << 80));
    IpNet::V6(Ipv6Net::new(a, 48).unwrap_or_default())
}

/// The `i`-th service address of workload 1, as a /32.
pub fn service_prefix(i: usize) -> IpNet {
    let (hi, lo) = ((i / 250) as u32, (i % 250) as u32 + 1);
    let a = Ipv4Addr::from(0x0a60_0000u32 + (hi << 8) + lo);
    IpNet::V4(Ipv4Net::new(a, 32).unwrap_or_default())
}

/// What a feed sends: its size and what makes its paths its own.
#[derive(Debug, Clone)]
pub struct Feed {
    /// The generator's AS (first in every path).
    pub asn: u32,
    /// ASNs between the feed's AS and the per-set origin AS: a longer path loses.
    pub padding: Vec<u32>,
    /// IPv4 prefixes.
    pub v4: usize,
    /// IPv6 prefixes.
    pub v6: usize,
    /// Distinct attribute sets per family (real tables have many; each set is packed apart).
    pub sets: usize,
    /// IPv4 next hop (the generator's address).
    pub next_hop_v4: Ipv4Addr,
    /// IPv6 next hop (the generator's address on the link).
    pub next_hop_v6: Ipv6Addr,
}

impl Feed {
    /// The attributes of set `s`: AS path `asn, padding.., 4200000000 + s`, MED `s`, one
    /// community.
    fn attributes(&self, s: usize) -> PathAttributes {
        let mut path = vec![self.asn];
        path.extend_from_slice(&self.padding);
        path.push(4_200_000_000 + s as u32);
        PathAttributes::new(Origin::Igp, AsPath::sequence(path))
            .with_med(s as u32)
            .with_communities([Community::new(
                (self.asn & 0xffff) as u16,
                (s % 65_535) as u16,
            )])
    }

    /// The whole table as packed UPDATEs, set by set, IPv4 then IPv6 of each set, then
    /// End-of-RIB for both families.
    pub fn updates(&self, ctx: &EncodeContext) -> Result<Vec<Bytes>, BenchError> {
        let sets = self.sets.max(1);
        let per4 = self.v4.div_ceil(sets);
        let per6 = self.v6.div_ceil(sets);
        let mut out = Vec::new();
        let enc = |e: bgp::wire::EncodeError| BenchError::Failed(format!("encoding a table: {e}"));
        for s in 0..sets {
            let attrs = self.attributes(s);
            let v4: Vec<Nlri> = (s * per4..((s + 1) * per4).min(self.v4))
                .map(|i| Nlri::new(v4_prefix(i)))
                .collect();
            let v6: Vec<Nlri> = (s * per6..((s + 1) * per6).min(self.v6))
                .map(|i| Nlri::new(v6_prefix(i)))
                .collect();
            if !v4.is_empty() {
                let a = Announce {
                    attributes: &attrs,
                    next_hop: NextHop::Ipv4(self.next_hop_v4),
                    nlri: &v4,
                };
                out.extend(pack_updates(ctx, Family::IPV4_UNICAST, Some(a), &[]).map_err(enc)?);
            }
            if !v6.is_empty() {
                let a = Announce {
                    attributes: &attrs,
                    next_hop: NextHop::Ipv6 {
                        global: self.next_hop_v6,
                        link_local: None,
                    },
                    nlri: &v6,
                };
                out.extend(pack_updates(ctx, Family::IPV6_UNICAST, Some(a), &[]).map_err(enc)?);
            }
        }
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let eor = bgp::wire::Message::Update(bgp::wire::Update::end_of_rib(f));
            out.push(eor.to_bytes(ctx).map_err(enc)?.freeze());
        }
        Ok(out)
    }

    /// For the churn workload: an UPDATE announcing IPv4 prefix `i` alone (with the
    /// attributes of its set) and one withdrawing it.
    pub fn flap_pair(&self, ctx: &EncodeContext, i: usize) -> Result<(Bytes, Bytes), BenchError> {
        let sets = self.sets.max(1);
        let per4 = self.v4.div_ceil(sets).max(1);
        let attrs = self.attributes(i / per4);
        let nlri = [Nlri::new(v4_prefix(i))];
        let enc = |e: bgp::wire::EncodeError| BenchError::Failed(format!("encoding a flap: {e}"));
        let a = Announce {
            attributes: &attrs,
            next_hop: NextHop::Ipv4(self.next_hop_v4),
            nlri: &nlri,
        };
        let mut up = pack_updates(ctx, Family::IPV4_UNICAST, Some(a), &[]).map_err(enc)?;
        let mut down = pack_updates(ctx, Family::IPV4_UNICAST, None, &nlri).map_err(enc)?;
        match (up.pop(), down.pop()) {
            (Some(u), Some(d)) => Ok((u, d)),
            _ => Err(BenchError::Failed("an empty flap".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::{DecodeContext, FamilySet, Message};

    fn ctx() -> EncodeContext {
        EncodeContext {
            four_octet_as: true,
            families: FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
            ..EncodeContext::default()
        }
    }

    fn feed() -> Feed {
        Feed {
            asn: 65101,
            padding: vec![65111],
            v4: 1000,
            v6: 300,
            sets: 7,
            next_hop_v4: Ipv4Addr::new(10, 0, 1, 2),
            next_hop_v6: "fd00:1::2".parse().unwrap(),
        }
    }

    #[test]
    fn a_feed_announces_every_prefix_once_and_ends_with_two_end_of_ribs() {
        let f = feed();
        let d: DecodeContext = ctx().mirror();
        let (mut v4, mut v6, mut eor) = (Vec::new(), Vec::new(), 0);
        for b in f.updates(&ctx()).unwrap() {
            let Ok(Message::Update(u)) = Message::decode(&b, &d) else {
                panic!("not an UPDATE")
            };
            if u.end_of_rib_family().is_some() {
                eor += 1;
                continue;
            }
            let path = u.attributes.as_path.as_ref().unwrap();
            assert_eq!(path.first_as(), Some(65101));
            assert_eq!(path.path_len(), 3);
            for (fam, n) in u.announced_routes() {
                if fam == Family::IPV4_UNICAST {
                    v4.push(n.prefix);
                } else {
                    v6.push(n.prefix);
                }
            }
        }
        assert_eq!(eor, 2);
        let want4: Vec<IpNet> = (0..1000).map(v4_prefix).collect();
        let want6: Vec<IpNet> = (0..300).map(v6_prefix).collect();
        assert_eq!(v4, want4);
        assert_eq!(v6, want6);
        assert_eq!(v4_prefix(999_999).to_string(), "35.66.63.0/24");
        assert_eq!(v6_prefix(1).to_string(), "2a00:0:1::/48");
    }

    #[test]
    fn a_flap_is_one_prefix_up_then_down() {
        let d: DecodeContext = ctx().mirror();
        let (up, down) = feed().flap_pair(&ctx(), 5).unwrap();
        let Ok(Message::Update(u)) = Message::decode(&up, &d) else {
            panic!()
        };
        assert_eq!(u.announced_routes().count(), 1);
        let Ok(Message::Update(w)) = Message::decode(&down, &d) else {
            panic!()
        };
        assert_eq!(
            w.withdrawn_routes()
                .map(|(_, n)| n.prefix)
                .collect::<Vec<_>>(),
            [v4_prefix(5)]
        );
    }

    #[test]
    fn service_addresses_skip_network_and_broadcast_octets() {
        assert_eq!(service_prefix(0).to_string(), "10.96.0.1/32");
        assert_eq!(service_prefix(249).to_string(), "10.96.0.250/32");
        assert_eq!(service_prefix(250).to_string(), "10.96.1.1/32");
        assert_eq!(service_prefix(9_999).to_string(), "10.96.39.250/32");
    }
}
