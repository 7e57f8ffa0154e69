//! Reading BGP messages out of a pcap or pcapng capture: link, IP and TCP headers, TCP
//! stream reassembly per direction, and cutting each stream into messages.
//!
//! Reassembly follows sequence numbers: in-order data is appended, retransmitted data is
//! skipped, data that arrives early waits (up to a bound) until the gap is filled. A stream
//! whose start was not captured is synchronised on the first BGP marker found. Each whole
//! message is handed to the caller as soon as its last octet is in, so messages of all
//! connections come out in capture order.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// Octets of out-of-order data kept per direction before giving up on a gap.
const MAX_PENDING: usize = 1 << 20;
/// Longest BGP message (RFC 8654).
const MAX_MESSAGE: usize = 65535;

/// One BGP message of a capture.
#[derive(Debug)]
pub struct Segment<'a> {
    /// Capture time of the packet that completed it.
    pub time: Duration,
    /// Sender, `addr:port` (`[v6]:port`).
    pub src: &'a str,
    /// Receiver.
    pub dst: &'a str,
    /// The whole message, marker included.
    pub message: &'a [u8],
}

/// One direction of a TCP connection.
#[derive(Default)]
struct Flow {
    /// Next expected sequence number, once known.
    next: Option<u32>,
    /// Contiguous data not yet cut into messages.
    buf: Vec<u8>,
    /// Early segments by sequence number.
    pending: BTreeMap<u32, Vec<u8>>,
    pending_len: usize,
    /// Whether the stream is aligned on message boundaries.
    synced: bool,
}

impl Flow {
    fn push(&mut self, seq: u32, syn: bool, data: &[u8]) {
        if syn {
            self.next = Some(seq.wrapping_add(1));
            self.synced = true;
        }
        if data.is_empty() {
            return;
        }
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        let next = *self.next.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            if self.pending_len + data.len() <= MAX_PENDING {
                self.pending_len += data.len();
                self.pending.insert(seq, data.to_vec());
            }
            return;
        }
        // Skip what was already received (retransmission or overlap).
        let skip = usize::try_from(-i64::from(ahead)).unwrap_or(usize::MAX);
        if let Some(new) = data.get(skip..) {
            self.buf.extend_from_slice(new);
            self.next = Some(next.wrapping_add(new.len() as u32));
        }
        // Early segments that now fit.
        while let Some((&s, _)) = self.pending.first_key_value() {
            let n = self.next.unwrap_or(s);
            if (s.wrapping_sub(n) as i32) > 0 {
                break;
            }
            if let Some((s, d)) = self.pending.pop_first() {
                self.pending_len -= d.len();
                let skip = n.wrapping_sub(s) as usize;
                if let Some(new) = d.get(skip..) {
                    self.buf.extend_from_slice(new);
                    self.next = Some(n.wrapping_add(new.len() as u32));
                }
            }
        }
    }

    /// Whole messages at the front of the buffer, removed from it.
    fn messages(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            if !self.synced {
                match find_marker(&self.buf) {
                    Some(at) => {
                        self.buf.drain(..at);
                        self.synced = true;
                    }
                    None => {
                        // Keep a possible partial marker.
                        let keep = self.buf.len().min(15);
                        self.buf.drain(..self.buf.len() - keep);
                        return out;
                    }
                }
            }
            let Some(len) = self
                .buf
                .get(16..18)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                return out;
            };
            let marker_ok = self.buf.iter().take(16).all(|b| *b == 0xff);
            if !marker_ok || !(19..=MAX_MESSAGE).contains(&len) {
                // Hand out the garbage as one "message" (the decoder says what is wrong)
                // and resynchronise on the next marker.
                let end = find_marker(self.buf.get(1..).unwrap_or_default())
                    .map_or(self.buf.len(), |at| at + 1);
                out.push(self.buf.drain(..end).collect());
                self.synced = false;
                continue;
            }
            if self.buf.len() < len {
                return out;
            }
            out.push(self.buf.drain(..len).collect());
        }
    }
}

fn find_marker(buf: &[u8]) -> Option<usize> {
    buf.windows(16).position(|w| w.iter().all(|b| *b == 0xff))
}

/// A packet's link-layer type, as far as this reader goes.
fn ip_payload(link: DataLink, data: &[u8]) -> Option<&[u8]> {
    match link {
        DataLink::ETHERNET => {
            let mut ethertype = u16::from_be_bytes([*data.get(12)?, *data.get(13)?]);
            let mut rest = data.get(14..)?;
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                ethertype = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
                rest = rest.get(4..)?;
            }
            matches!(ethertype, 0x0800 | 0x86dd).then_some(rest)
        }
        DataLink::LINUX_SLL => data.get(16..),
        DataLink::LINUX_SLL2 => data.get(20..),
        DataLink::NULL | DataLink::LOOP => data.get(4..),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Some(data),
        _ => None,
    }
}

/// (source, destination, TCP segment) of an IPv4 or IPv6 packet carrying TCP.
fn tcp_of(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            if *ip.get(9)? != 6 || frag & 0x3fff != 0 {
                return None;
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            let end = total.min(ip.len());
            Some((src.into(), dst.into(), ip.get(ihl..end)?))
        }
        6 => {
            let plen = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            if *ip.get(6)? != 6 {
                return None;
            }
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let end = (40 + plen).min(ip.len());
            Some((src.into(), dst.into(), ip.get(40..end)?))
        }
        _ => None,
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Reads a pcap or pcapng capture and calls `each` for every BGP message of the TCP
/// streams to or from `port`, in capture order.
pub fn read_tcp_streams(
    mut input: impl Read,
    port: u16,
    mut each: impl FnMut(Segment<'_>),
) -> anyhow::Result<()> {
    let mut data = Vec::new();
    input
        .read_to_end(&mut data)
        .context("cannot read the capture")?;
    let mut flows: HashMap<(String, String), Flow> = HashMap::new();
    let mut packet = |time: Duration, link: DataLink, frame: &[u8]| {
        let Some((src, dst, tcp)) = ip_payload(link, frame).and_then(tcp_of) else {
            return;
        };
        let (Some(sp), Some(dp)) = (tcp.get(0..2), tcp.get(2..4)) else {
            return;
        };
        let (sp, dp) = (
            u16::from_be_bytes([sp[0], sp[1]]),
            u16::from_be_bytes([dp[0], dp[1]]),
        );
        if sp != port && dp != port {
            return;
        }
        let (Some(seq), Some(&off), Some(&flags)) = (tcp.get(4..8), tcp.get(12), tcp.get(13))
        else {
            return;
        };
        let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
        let payload = tcp.get(usize::from(off >> 4) * 4..).unwrap_or_default();
        let (s, d) = (endpoint(src, sp), endpoint(dst, dp));
        let flow = flows.entry((s.clone(), d.clone())).or_default();
        flow.push(seq, flags & 0x02 != 0, payload);
        for m in flow.messages() {
            each(Segment {
                time,
                src: &s,
                dst: &d,
                message: &m,
            });
        }
    };
    let magic = data.get(0..4).unwrap_or_default();
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(data.as_slice()).context("not a pcapng file")?;
        // Link types of the current section's interfaces, by interface id.
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = r.next_block() {
            match block.context("corrupt pcapng block")? {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(p) => {
                    let link = links
                        .get(p.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    packet(p.timestamp, link, &p.data);
                }
                Block::SimplePacket(p) => {
                    let link = links.first().copied().unwrap_or(DataLink::ETHERNET);
                    packet(Duration::ZERO, link, &p.data);
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(data.as_slice()).context("neither a pcap nor a pcapng file")?;
        let link = r.header().datalink;
        while let Some(p) = r.next_packet() {
            let p = p.context("corrupt pcap packet")?;
            packet(p.timestamp, link, &p.data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(t);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn out_of_order_and_retransmitted_segments_reassemble() {
        let stream: Vec<u8> = [msg(4, &[]), msg(3, &[6, 2]), msg(4, &[])].concat();
        let mut f = Flow::default();
        f.push(999, true, &[]);
        f.push(1020, false, &stream[20..]);
        f.push(1000, false, &stream[..10]);
        f.push(1005, false, &stream[5..20]); // overlaps what came before
        f.push(1000, false, &stream[..10]); // retransmission
        let got = f.messages();
        assert_eq!(got.concat(), stream);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn a_stream_captured_mid_way_syncs_on_the_next_marker() {
        let stream: Vec<u8> = [msg(4, &[]), msg(4, &[])].concat();
        let mut f = Flow::default();
        f.push(7, false, &stream[5..]);
        let got = f.messages();
        assert_eq!(got, vec![msg(4, &[])]);
    }

    #[test]
    fn garbage_is_handed_out_and_the_stream_resynchronises() {
        let stream: Vec<u8> = [vec![1, 2, 3], msg(4, &[])].concat();
        let mut f = Flow::default();
        f.push(0, true, &[]);
        f.push(1, false, &stream);
        let got = f.messages();
        assert_eq!(got, vec![vec![1, 2, 3], msg(4, &[])]);
    }
}
