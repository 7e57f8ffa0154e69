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
        let n = usize::from(len).div_ceil(8);
        // Write the length and the whole address (a fixed-size copy), then drop the octets
        // past the prefix.
        match self.prefix {
            IpNet::V4(p) => {
                let [a, b, c, d] = p.addr().octets();
                out.put_slice(&[len, a, b, c, d]);
                out.truncate(out.len() - (4 - n.min(4)));
            }
            IpNet::V6(p) => {
                let mut buf = [0u8; 17];
                if let Some((first, rest)) = buf.split_first_mut() {
                    *first = len;
                    rest.copy_from_slice(&p.addr().octets());
                }
                out.put_slice(&buf);
                out.truncate(out.len() - (16 - n.min(16)));
            }
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

/// Decodes a prefix field of an IPv4 (`v6 == false`) or IPv6 family, appending to `out`.
///
/// One pass: the vector is sized for the field's length divided by a typical prefix size
/// (a /24 or a /48), which fits typical UPDATEs exactly and otherwise grows by doubling: a
/// few allocations per field, never one per prefix.
pub(crate) fn decode_prefixes(
    buf: &[u8],
    v6: bool,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    if buf.is_empty() {
        return Ok(());
    }
    let typical = match (v6, add_path) {
        (false, false) => 4,
        (false, true) => 8,
        (true, false) => 7,
        (true, true) => 11,
    };
    out.reserve(buf.len() / typical + 1);
    match (v6, add_path) {
        (false, false) => decode_all(buf, out, |r| Ok((None, read_v4(r)?))),
        (false, true) => decode_all(buf, out, |r| {
            let (id, r) = r.split_first_chunk::<4>().ok_or(TRUNCATED_ID)?;
            let p = read_v4(r).map_err(|(at, w)| (at + 4, w))?;
            Ok((Some(u32::from_be_bytes(*id)), p))
        }),
        (true, false) => decode_all(buf, out, |r| Ok((None, read_v6(r)?))),
        (true, true) => decode_all(buf, out, |r| {
            let (id, r) = r.split_first_chunk::<4>().ok_or(TRUNCATED_ID)?;
            let p = read_v6(r).map_err(|(at, w)| (at + 4, w))?;
            Ok((Some(u32::from_be_bytes(*id)), p))
        }),
    }
}

const TRUNCATED_ID: (usize, &str) = (0, "path identifier truncated");
const TOO_LONG: &str = "prefix length exceeds the address length";
const TRUNCATED: &str = "prefix runs past the end of the field";

/// A decoded NLRI and what follows it, or (offset within the NLRI, what was wrong).
type Read<'a> = Result<(Option<u32>, (IpNet, &'a [u8])), (usize, &'static str)>;

#[inline(always)]
fn decode_all<'a>(
    buf: &'a [u8],
    out: &mut Vec<Nlri>,
    read: impl Fn(&'a [u8]) -> Read<'a>,
) -> Result<(), NlriError> {
    let mut rest = buf;
    while !rest.is_empty() {
        match read(rest) {
            Ok((path_id, (prefix, tail))) => {
                out.push(Nlri { path_id, prefix });
                rest = tail;
            }
            Err((at, what)) => {
                return Err(NlriError {
                    at: buf.len() - rest.len() + at,
                    what,
                });
            }
        }
    }
    Ok(())
}

/// One IPv4 prefix (length octet and address octets) and what follows it.
#[inline(always)]
fn read_v4(r: &[u8]) -> Result<(IpNet, &[u8]), (usize, &'static str)> {
    let (&len, tail) = r.split_first().ok_or((0, TRUNCATED))?;
    let n = usize::from(len).div_ceil(8);
    // Load four octets at once when there are four (the octets past the prefix belong to
    // the next one and are masked off); byte by byte only at the end of the field.
    let v = match tail.first_chunk::<4>() {
        Some(c) => u32::from_be_bytes(*c),
        None => {
            let mut a = [0u8; 4];
            for (d, s) in a.iter_mut().zip(tail.get(..n).ok_or((0, TRUNCATED))?) {
                *d = *s;
            }
            u32::from_be_bytes(a)
        }
    };
    let prefix = Ipv4Net::new(Ipv4Addr::from(v & mask32(len)), len).map_err(|_| (0, TOO_LONG))?;
    Ok((IpNet::V4(prefix), tail.get(n..).ok_or((0, TRUNCATED))?))
}

/// One IPv6 prefix and what follows it.
#[inline(always)]
fn read_v6(r: &[u8]) -> Result<(IpNet, &[u8]), (usize, &'static str)> {
    let (&len, tail) = r.split_first().ok_or((0, TRUNCATED))?;
    let n = usize::from(len).div_ceil(8);
    let v = match tail.first_chunk::<16>() {
        Some(c) => u128::from_be_bytes(*c),
        None => {
            let mut a = [0u8; 16];
            for (d, s) in a.iter_mut().zip(tail.get(..n).ok_or((0, TRUNCATED))?) {
                *d = *s;
            }
            u128::from_be_bytes(a)
        }
    };
    let prefix = Ipv6Net::new(Ipv6Addr::from(v & mask128(len)), len).map_err(|_| (0, TOO_LONG))?;
    Ok((IpNet::V6(prefix), tail.get(n..).ok_or((0, TRUNCATED))?))
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
