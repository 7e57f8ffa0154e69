//! AS_PATH and AS4_PATH (RFC 4271 §5.1.2, RFC 6793, RFC 5065 for confederations).
//!
//! ```text
//! +----------------+----------------+----------------------------------+
//! | segment type   | segment length | ASNs (2 or 4 octets each)  ...   |
//! | (1 octet)      | (1 octet, ASNs)|                                  |
//! +----------------+----------------+----------------------------------+
//! ```
//!
//! ASNs are always held as `u32`. On a session without 4-octet AS numbers the decoded
//! AS_PATH holds what was on the wire (AS_TRANS where the sender had a 4-octet AS) and the
//! AS4_PATH is kept beside it; [`AsPath::merge_as4`] rebuilds the real path as RFC 6793
//! §4.2.3 says.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde::{Serialize, Serializer};

use crate::wire::error::AsPathMalformation;
use crate::wire::open::AS_TRANS;

/// Segment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum SegmentType {
    /// 1: an unordered set of ASes a route traversed (aggregation).
    AsSet = 1,
    /// 2: an ordered sequence of ASes.
    AsSequence = 2,
    /// 3: an ordered sequence of member ASes of the local confederation (RFC 5065).
    AsConfedSequence = 3,
    /// 4: an unordered set of member ASes of the local confederation (RFC 5065).
    AsConfedSet = 4,
}

impl SegmentType {
    fn from_u8(v: u8) -> Option<SegmentType> {
        Some(match v {
            1 => SegmentType::AsSet,
            2 => SegmentType::AsSequence,
            3 => SegmentType::AsConfedSequence,
            4 => SegmentType::AsConfedSet,
            _ => return None,
        })
    }

    fn is_confed(self) -> bool {
        matches!(
            self,
            SegmentType::AsConfedSequence | SegmentType::AsConfedSet
        )
    }
}

/// One segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsSegment {
    /// Its type.
    pub kind: SegmentType,
    /// Its ASNs (never empty on the wire).
    pub asns: Vec<u32>,
}

/// An AS path: segments in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// The segments.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// The empty path (a locally originated route sent to an iBGP peer).
    pub fn empty() -> AsPath {
        AsPath::default()
    }

    /// One AS_SEQUENCE of these ASNs (empty path if there are none).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::empty();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::AsSequence,
                asns,
            }],
        }
    }

    /// Path length for route selection (RFC 4271 §9.1.2.2): each sequence AS counts one,
    /// each set counts one, confederation segments count zero.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::AsSequence => s.asns.len(),
                SegmentType::AsSet => 1,
                SegmentType::AsConfedSequence | SegmentType::AsConfedSet => 0,
            })
            .sum()
    }

    /// The leftmost AS of the first AS_SEQUENCE, if the path starts with one.
    pub fn first_as(&self) -> Option<u32> {
        let s = self.segments.first()?;
        (s.kind == SegmentType::AsSequence)
            .then(|| s.asns.first().copied())
            .flatten()
    }

    /// Whether the AS appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The path with `asn` prepended, as a speaker does when sending to an eBGP peer.
    pub fn prepended(&self, asn: u32) -> AsPath {
        let mut p = self.clone();
        match p.segments.first_mut() {
            Some(s) if s.kind == SegmentType::AsSequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn);
            }
            _ => p.segments.insert(
                0,
                AsSegment {
                    kind: SegmentType::AsSequence,
                    asns: vec![asn],
                },
            ),
        }
        p
    }

    /// Whether any ASN needs 4 octets.
    pub fn has_four_octet_asn(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|a| *a > u32::from(u16::MAX)))
    }

    /// The real path from an AS_PATH received on a 2-octet session and its AS4_PATH
    /// (RFC 6793 §4.2.3): when AS_PATH is not shorter, its leading ASes are kept and the
    /// rest is taken from AS4_PATH; otherwise AS4_PATH is ignored. Confederation segments
    /// in AS4_PATH are not used.
    pub fn merge_as4(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
        let as4 = AsPath {
            segments: as4_path
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        };
        let count = |p: &AsPath| -> usize {
            p.segments
                .iter()
                .map(|s| match s.kind {
                    SegmentType::AsSequence => s.asns.len(),
                    SegmentType::AsSet => 1,
                    _ => 0,
                })
                .sum()
        };
        let (n, n4) = (count(as_path), count(&as4));
        if n < n4 {
            return as_path.clone();
        }
        // Keep the first n - n4 ASes of AS_PATH (confederation segments kept whole), then
        // append AS4_PATH.
        let mut keep = n - n4;
        let mut out = Vec::new();
        for s in &as_path.segments {
            if s.kind.is_confed() {
                out.push(s.clone());
                continue;
            }
            if keep == 0 {
                break;
            }
            match s.kind {
                SegmentType::AsSet => {
                    out.push(s.clone());
                    keep -= 1;
                }
                _ => {
                    let take = keep.min(s.asns.len());
                    out.push(AsSegment {
                        kind: s.kind,
                        asns: s.asns.iter().take(take).copied().collect(),
                    });
                    keep -= take;
                }
            }
        }
        out.extend(as4.segments);
        AsPath { segments: out }
    }

    /// Decodes AS_PATH or AS4_PATH with 2- or 4-octet ASNs.
    pub(crate) fn decode(value: &[u8], four: bool) -> Result<AsPath, AsPathMalformation> {
        let width = if four { 4 } else { 2 };
        let mut rest = value;
        let mut segments = Vec::new();
        while !rest.is_empty() {
            let Some((&[kind, count], tail)) = rest.split_first_chunk::<2>() else {
                return Err(AsPathMalformation::HeaderTruncated);
            };
            let kind = SegmentType::from_u8(kind).ok_or(AsPathMalformation::UnknownSegmentType)?;
            if count == 0 {
                return Err(AsPathMalformation::EmptySegment);
            }
            let Some((body, tail)) = tail.split_at_checked(usize::from(count) * width) else {
                return Err(AsPathMalformation::SegmentOverrun);
            };
            let asns = if four {
                let (chunks, _) = body.as_chunks::<4>();
                chunks.iter().map(|c| u32::from_be_bytes(*c)).collect()
            } else {
                let (chunks, _) = body.as_chunks::<2>();
                chunks
                    .iter()
                    .map(|c| u32::from(u16::from_be_bytes(*c)))
                    .collect()
            };
            segments.push(AsSegment { kind, asns });
            rest = tail;
        }
        Ok(AsPath { segments })
    }

    /// Encodes with 2- or 4-octet ASNs (AS_TRANS for ASNs that do not fit in 2), splitting
    /// segments longer than 255 ASNs.
    pub(crate) fn encode(&self, four: bool, out: &mut BytesMut) {
        for s in &self.segments {
            for chunk in s.asns.chunks(255) {
                out.put_u8(s.kind as u8);
                out.put_u8(chunk.len() as u8);
                for a in chunk {
                    if four {
                        out.put_u32(*a);
                    } else {
                        out.put_u16(u16::try_from(*a).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// Encoded length in octets.
    pub(crate) fn encoded_len(&self, four: bool) -> usize {
        let w = if four { 4 } else { 2 };
        self.segments
            .iter()
            .map(|s| s.asns.len().div_ceil(255) * 2 + s.asns.len() * w)
            .sum()
    }
}

impl fmt::Display for AsPath {
    /// `65001 65002 {65003,65004} (65010 65011) [65012]`: sequences bare, sets in braces,
    /// confederation sequences in parentheses, confederation sets in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, sep, close) = match s.kind {
                SegmentType::AsSequence => ("", " ", ""),
                SegmentType::AsSet => ("{", ",", "}"),
                SegmentType::AsConfedSequence => ("(", " ", ")"),
                SegmentType::AsConfedSet => ("[", ",", "]"),
            };
            f.write_str(open)?;
            for (i, a) in s.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

impl Serialize for AsPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(a: &[u32]) -> AsSegment {
        AsSegment {
            kind: SegmentType::AsSequence,
            asns: a.to_vec(),
        }
    }

    #[test]
    fn two_octet_path_decodes_and_displays() {
        let p = AsPath::decode(&[2, 2, 0xfd, 0xe9, 0xfd, 0xea, 1, 1, 0, 1], false).unwrap();
        assert_eq!(p.to_string(), "65001 65002 {1}");
        assert_eq!(p.path_len(), 3);
        assert_eq!(p.first_as(), Some(65001));
    }

    #[test]
    fn malformed_segments_are_named() {
        assert_eq!(
            AsPath::decode(&[2, 0], true),
            Err(AsPathMalformation::EmptySegment)
        );
        assert_eq!(
            AsPath::decode(&[5, 1, 0, 0, 0, 1], true),
            Err(AsPathMalformation::UnknownSegmentType)
        );
        assert_eq!(
            AsPath::decode(&[2, 2, 0, 0, 0, 1], true),
            Err(AsPathMalformation::SegmentOverrun)
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 1, 2], false),
            Err(AsPathMalformation::HeaderTruncated)
        );
    }

    #[test]
    fn long_segments_are_split_at_255() {
        let p = AsPath::sequence(1..=300);
        let mut b = BytesMut::new();
        p.encode(true, &mut b);
        assert_eq!(b.len(), p.encoded_len(true));
        let back = AsPath::decode(&b, true).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.path_len(), 300);
    }

    #[test]
    fn four_octet_asns_become_as_trans_on_two_octet_sessions() {
        let p = AsPath::sequence([4_200_000_001, 65001]);
        let mut b = BytesMut::new();
        p.encode(false, &mut b);
        assert_eq!(&b[..], &[2, 2, 0x5b, 0xa0, 0xfd, 0xe9]);
    }

    #[test]
    fn as4_path_replaces_the_tail_of_as_path() {
        let as_path = AsPath {
            segments: vec![seq(&[65001, 23456, 23456])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4_200_000_001, 4_200_000_002])],
        };
        let merged = AsPath::merge_as4(&as_path, &as4);
        assert_eq!(merged.to_string(), "65001 4200000001 4200000002");
        let longer = AsPath::sequence([1, 2, 3, 4]);
        assert_eq!(AsPath::merge_as4(&as_path, &longer), as_path);
    }

    #[test]
    fn prepending_extends_the_first_sequence() {
        let p = AsPath::sequence([65002]).prepended(65001);
        assert_eq!(p.to_string(), "65001 65002");
        assert_eq!(AsPath::empty().prepended(7).to_string(), "7");
    }
}
