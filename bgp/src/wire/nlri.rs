//! Network Layer Reachability Information: IPv4 and IPv6 prefixes, with or without the path
//! identifier of add-path (RFC 7911).
//!
//! ```text
//! +---------------------------+
//! |   Path Identifier (4 octets, only with add-path)
//! +---------------------------+
//! |   Length (1 octet, in bits)
//! +---------------------------+
//! |   Prefix (ceil(Length / 8) octets)
//! +---------------------------+
//! ```
//!
//! This is the hot path of the codec: an UPDATE may carry hundreds of prefixes. Decoding
//! first walks the field once to validate it and count the prefixes, then fills a vector
//! allocated once at the exact size, so there is no allocation per prefix. Bits beyond the
//! prefix length are cleared, so `10.1.2.3/8` on the wire decodes as `10.0.0.0/8`.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Serialize, Serializer};

/// A route's destination: a prefix and, with add-path, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    /// The add-path path identifier (RFC 7911), present only where add-path is negotiated.
    pub path_id: Option<u32>,
    /// The prefix, with its host bits cleared.
    pub prefix: IpNet,
}

impl Nlri {
    /// A prefix without path identifier; host bits are cleared.
    pub fn new(prefix: IpNet) -> Nlri {
        Nlri {
            path_id: None,
            prefix: prefix.trunc(),
        }
    }

    /// A prefix with a path identifier; host bits are cleared.
    pub fn with_path_id(prefix: IpNet, path_id: u32) -> Nlri {
        Nlri {
            path_id: Some(path_id),
            prefix: prefix.trunc(),
        }
    }

    /// Octets this NLRI takes on the wire, with or without its path identifier.
    pub fn encoded_len(&self, add_path: bool) -> usize {
        let p = 1 + usize::from(self.prefix.prefix_len()).div_ceil(8);
        if add_path { p + 4 } else { p }
    }

    /// Writes it; the path identifier (0 if absent) only when `add_path`.
    pub(crate) fn encode(&self, add_path: bool, out: &mut BytesMut) {
        if add_path {
            out.put_u32(self.path_id.unwrap_or(0));
        }
        let len = self.prefix.prefix_len();
        out.put_u8(len);
        let n = usize::from(len).div_ceil(8);
        match self.prefix {
            IpNet::V4(p) => out.put_slice(p.addr().octets().get(..n).unwrap_or_default()),
            IpNet::V6(p) => out.put_slice(p.addr().octets().get(..n).unwrap_or_default()),
        }
    }
}

impl From<IpNet> for Nlri {
    fn from(prefix: IpNet) -> Nlri {
        Nlri::new(prefix)
    }
}

impl Serialize for Nlri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.path_id {
            None => s.collect_str(&self.prefix),
            Some(id) => {
                use serde::ser::SerializeStruct as _;
                let mut st = s.serialize_struct("Nlri", 2)?;
                st.serialize_field("prefix", &self.prefix)?;
                st.serialize_field("path_id", &id)?;
                st.end()
            }
        }
    }
}

/// Why a prefix list did not parse: the offset within the field and what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NlriError {
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

/// Walks a prefix field without decoding it: checks every length and returns the count.
fn validate(buf: &[u8], max_len: u8, add_path: bool) -> Result<usize, NlriError> {
    let mut pos = 0usize;
    let mut count = 0usize;
    let id_len = if add_path { 4 } else { 0 };
    while pos < buf.len() {
        let len_at = pos + id_len;
        let Some(&len) = buf.get(len_at) else {
            return Err(NlriError {
                at: pos,
                what: "path identifier truncated",
            });
        };
        if len > max_len {
            return Err(NlriError {
                at: len_at,
                what: "prefix length exceeds the address length",
            });
        }
        let end = len_at + 1 + usize::from(len).div_ceil(8);
        if end > buf.len() {
            return Err(NlriError {
                at: len_at,
                what: "prefix runs past the end of the field",
            });
        }
        pos = end;
        count += 1;
    }
    Ok(count)
}

/// Decodes a prefix field of an IPv4 (`v6 == false`) or IPv6 family, appending to `out`.
pub(crate) fn decode_prefixes(
    buf: &[u8],
    v6: bool,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    let count = validate(buf, if v6 { 128 } else { 32 }, add_path)?;
    out.reserve_exact(count);
    let mut rest = buf;
    // `validate` has checked every length, so the `else` arms below are unreachable; they
    // keep the decoder free of panics should the two ever disagree.
    let bad = NlriError {
        at: 0,
        what: "prefix field changed while decoding",
    };
    while !rest.is_empty() {
        let path_id = if add_path {
            let Some((id, tail)) = rest.split_first_chunk::<4>() else {
                return Err(bad);
            };
            rest = tail;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let Some((&len, tail)) = rest.split_first() else {
            return Err(bad);
        };
        let n = usize::from(len).div_ceil(8);
        let Some((bytes, tail)) = tail.split_at_checked(n) else {
            return Err(bad);
        };
        rest = tail;
        let prefix = if v6 {
            let mut a = [0u8; 16];
            if let Some(dst) = a.get_mut(..n) {
                dst.copy_from_slice(bytes);
            }
            let v = u128::from_be_bytes(a) & mask128(len);
            Ipv6Net::new(Ipv6Addr::from(v), len).map(IpNet::V6)
        } else {
            let mut a = [0u8; 4];
            if let Some(dst) = a.get_mut(..n) {
                dst.copy_from_slice(bytes);
            }
            let v = u32::from_be_bytes(a) & mask32(len);
            Ipv4Net::new(Ipv4Addr::from(v), len).map(IpNet::V4)
        };
        let Ok(prefix) = prefix else {
            return Err(bad);
        };
        out.push(Nlri { path_id, prefix });
    }
    Ok(())
}

fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8], v6: bool, add_path: bool) -> Result<Vec<Nlri>, NlriError> {
        let mut out = Vec::new();
        decode_prefixes(buf, v6, add_path, &mut out).map(|()| out)
    }

    #[test]
    fn ipv4_prefixes_decode_with_host_bits_cleared() {
        let got = decode(&[24, 10, 1, 2, 8, 10, 0, 32, 1, 2, 3, 4], false, false).unwrap();
        let want: Vec<Nlri> = ["10.1.2.0/24", "10.0.0.0/8", "0.0.0.0/0", "1.2.3.4/32"]
            .iter()
            .map(|p| Nlri::new(p.parse().unwrap()))
            .collect();
        assert_eq!(got, want);
        let stray = decode(&[8, 10 | 0x01], false, false).unwrap();
        assert_eq!(stray[0].prefix.to_string(), "11.0.0.0/8");
        let host_bits = decode(&[7, 0x0b], false, false).unwrap();
        assert_eq!(host_bits[0].prefix.to_string(), "10.0.0.0/7");
    }

    #[test]
    fn ipv6_prefixes_with_path_ids_decode() {
        let buf = [0, 0, 0, 7, 32, 0x20, 0x01, 0x0d, 0xb8];
        let got = decode(&buf, true, true).unwrap();
        assert_eq!(
            got,
            vec![Nlri::with_path_id("2001:db8::/32".parse().unwrap(), 7)]
        );
    }

    #[test]
    fn prefix_longer_than_the_address_is_an_error_at_its_length_octet() {
        assert_eq!(
            decode(&[24, 10, 1, 2, 33, 1, 2, 3, 4, 5], false, false),
            Err(NlriError {
                at: 4,
                what: "prefix length exceeds the address length"
            })
        );
    }

    #[test]
    fn truncated_prefix_is_an_error() {
        assert!(decode(&[24, 10, 1], false, false).is_err());
        assert!(decode(&[0, 0, 0], false, true).is_err());
    }

    #[test]
    fn encoding_writes_only_the_significant_octets() {
        let mut out = BytesMut::new();
        Nlri::with_path_id("10.1.0.0/17".parse().unwrap(), 3).encode(true, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 3, 17, 10, 1, 0]);
        assert_eq!(
            Nlri::new("10.1.0.0/17".parse().unwrap()).encoded_len(false),
            4
        );
    }
}
