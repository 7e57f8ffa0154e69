//! Compact prefix keys and a fast hasher for the route tables.
//!
//! An IPv4 prefix is one `u64` (address and length), an IPv6 prefix two `u64`s and a length:
//! no `IpNet` enum, no padding to 16-octet alignment, and hashing is a couple of
//! multiplications. The tables are `HashMap`s keyed by these.

use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::wire::{Family, Nlri};

/// A multiply-rotate hasher (in the spirit of FxHash) for small integer keys. Not resistant to
/// crafted collisions; the keys here are prefixes the operator's peers send, and a collision
/// costs time, not correctness.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            if let Some(d) = b.get_mut(..chunk.len()) {
                d.copy_from_slice(chunk);
            }
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(26) ^ i).wrapping_mul(K);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket index from the low bits.
        self.0 ^ (self.0 >> 29)
    }
}

/// `BuildHasher` of [`FastHasher`].
pub type FastHash = BuildHasherDefault<FastHasher>;

/// A prefix key of one address family.
pub trait Key: Copy + Eq + Hash + Ord + Debug + Send + Sync + 'static {
    /// The unicast family of these keys.
    const FAMILY: Family;
    /// The key of a prefix of this family (host bits cleared).
    fn from_net(net: &IpNet) -> Option<Self>;
    /// Back to a prefix.
    fn net(self) -> IpNet;
    /// As an NLRI without path identifier.
    fn nlri(self) -> Nlri {
        Nlri {
            path_id: None,
            prefix: self.net(),
        }
    }
}

/// An IPv4 prefix: the address in the high 32 bits, the length in the low 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V4(u64);

impl Key for V4 {
    const FAMILY: Family = Family::IPV4_UNICAST;

    fn from_net(net: &IpNet) -> Option<V4> {
        match net {
            IpNet::V4(n) => {
                let n = n.trunc();
                Some(V4(
                    (u64::from(u32::from(n.addr())) << 8) | u64::from(n.prefix_len())
                ))
            }
            IpNet::V6(_) => None,
        }
    }

    fn net(self) -> IpNet {
        let addr = Ipv4Addr::from((self.0 >> 8) as u32);
        let len = (self.0 & 0xff) as u8;
        IpNet::V4(Ipv4Net::new(addr, len.min(32)).unwrap_or_default())
    }
}

/// An IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V6 {
    hi: u64,
    lo: u64,
    len: u8,
}

impl Key for V6 {
    const FAMILY: Family = Family::IPV6_UNICAST;

    fn from_net(net: &IpNet) -> Option<V6> {
        match net {
            IpNet::V6(n) => {
                let n = n.trunc();
                let a = u128::from(n.addr());
                Some(V6 {
                    hi: (a >> 64) as u64,
                    lo: a as u64,
                    len: n.prefix_len(),
                })
            }
            IpNet::V4(_) => None,
        }
    }

    fn net(self) -> IpNet {
        let a = (u128::from(self.hi) << 64) | u128::from(self.lo);
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), self.len.min(128)).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keys_round_trip_and_clear_host_bits() {
        let n: IpNet = "10.1.2.3/24".parse().unwrap();
        let k = V4::from_net(&n).unwrap();
        assert_eq!(k.net().to_string(), "10.1.2.0/24");
        assert!(V6::from_net(&n).is_none());
        let n: IpNet = "2001:db8::1/128".parse().unwrap();
        assert_eq!(V6::from_net(&n).unwrap().net(), n);
        assert_eq!(std::mem::size_of::<V4>(), 8);
        assert_eq!(std::mem::size_of::<V6>(), 24);
    }

    #[test]
    fn keys_of_one_address_with_different_lengths_differ() {
        let a = V4::from_net(&"10.0.0.0/8".parse().unwrap()).unwrap();
        let b = V4::from_net(&"10.0.0.0/16".parse().unwrap()).unwrap();
        assert_ne!(a, b);
        assert!(a < b);
    }
}
