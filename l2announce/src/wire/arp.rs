//! ARP for IPv4 over Ethernet (RFC 826), with the announcement forms of RFC 5227 §2.3.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     hardware type (1)         |     protocol type (0x0800)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | hw len (6)    | proto len (4) |  operation (1 request, 2 reply)|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  sender hardware address (6) ... sender protocol address (4)  |
//! |  target hardware address (6) ... target protocol address (4)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use super::{
    ETHERTYPE_ARP, ETHERTYPE_IPV4, MacAddr, Reader, WireError, pad_frame, write_ethernet_header,
};

/// ARP hardware type of Ethernet.
const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// `who-has`: 1.
    Request,
    /// `is-at`: 2.
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpPacket {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Octets of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Decodes the payload of an Ethernet frame of type ARP. Trailing octets (padding to the
    /// Ethernet minimum) are ignored.
    pub fn parse(payload: &[u8]) -> Result<ArpPacket, WireError> {
        let mut r = Reader::new(payload, "ARP hardware type");
        let htype = r.u16()?;
        if htype != HTYPE_ETHERNET {
            return Err(WireError::Unsupported {
                what: "ARP hardware type",
                value: htype.into(),
            });
        }
        let ptype = r.field("ARP protocol type").u16()?;
        if ptype != ETHERTYPE_IPV4 {
            return Err(WireError::Unsupported {
                what: "ARP protocol type",
                value: ptype.into(),
            });
        }
        let hlen = r.field("ARP hardware length").u8()?;
        let plen = r.field("ARP protocol length").u8()?;
        if hlen != 6 || plen != 4 {
            return Err(WireError::Invalid {
                what: "ARP address lengths",
                why: "Ethernet/IPv4 ARP has 6-octet hardware and 4-octet protocol addresses",
            });
        }
        let operation = match r.field("ARP operation").u16()? {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => {
                return Err(WireError::Unsupported {
                    what: "ARP operation",
                    value: other.into(),
                });
            }
        };
        r.field("ARP addresses");
        let sender_mac = MacAddr(r.array()?);
        let sender_ip = Ipv4Addr::from(r.array::<4>()?);
        let target_mac = MacAddr(r.array()?);
        let target_ip = Ipv4Addr::from(r.array::<4>()?);
        Ok(ArpPacket {
            operation,
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        })
    }

    /// Appends the 28 octets of the packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&self.operation.code().to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }

    /// `who-has target_ip tell sender_ip`.
    pub fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
    }

    /// The reply to this request saying that `self.target_ip` is at `mac`, addressed to the
    /// requester (for a probe from 0.0.0.0, to 0.0.0.0 at the prober's MAC, as RFC 5227
    /// expects a defender to answer).
    pub fn reply(&self, mac: MacAddr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    /// An RFC 5227 ARP announcement: a request whose sender and target are both `ip`, target
    /// hardware address zero. Hosts that already have `ip` in their cache update it.
    pub fn announcement(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// A gratuitous reply (`ip is-at mac`, target hardware address broadcast): the form some
    /// routers honour instead of the request form. Linux takes either.
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::BROADCAST,
            target_ip: ip,
        }
    }

    /// Whether this is gratuitous (sender and target protocol addresses equal).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// Whether this is an RFC 5227 probe (a request from 0.0.0.0).
    pub fn is_probe(&self) -> bool {
        self.operation == ArpOperation::Request && self.sender_ip.is_unspecified()
    }

    /// The whole Ethernet frame carrying this packet, padded to 60 octets.
    pub fn to_frame(&self, eth_dst: MacAddr, eth_src: MacAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(super::ETHERNET_MIN_FRAME);
        write_ethernet_header(&mut out, eth_dst, eth_src, ETHERTYPE_ARP);
        self.write(&mut out);
        pad_frame(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;
    use proptest::prelude::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    #[test]
    fn a_request_round_trips_through_a_padded_frame() {
        let req = ArpPacket::request(
            mac(1),
            Ipv4Addr::new(192, 168, 10, 200),
            Ipv4Addr::new(192, 168, 10, 211),
        );
        let frame = req.to_frame(MacAddr::BROADCAST, mac(1));
        assert_eq!(frame.len(), 60);
        let eth = EthernetFrame::parse(&frame).unwrap();
        assert_eq!(eth.ethertype, ETHERTYPE_ARP);
        assert_eq!(ArpPacket::parse(eth.payload).unwrap(), req);
    }

    #[test]
    fn a_reply_answers_the_requester_with_our_mac() {
        let req = ArpPacket::request(
            mac(1),
            Ipv4Addr::new(192, 168, 10, 200),
            Ipv4Addr::new(192, 168, 10, 211),
        );
        let rep = req.reply(mac(9));
        assert_eq!(rep.operation, ArpOperation::Reply);
        assert_eq!(
            (rep.sender_mac, rep.sender_ip),
            (mac(9), Ipv4Addr::new(192, 168, 10, 211))
        );
        assert_eq!(
            (rep.target_mac, rep.target_ip),
            (mac(1), Ipv4Addr::new(192, 168, 10, 200))
        );
        assert!(!rep.is_gratuitous());
    }

    #[test]
    fn announcements_and_gratuitous_replies_carry_the_address_twice() {
        let ip = Ipv4Addr::new(192, 168, 10, 211);
        let a = ArpPacket::announcement(mac(9), ip);
        assert!(
            a.is_gratuitous()
                && a.operation == ArpOperation::Request
                && a.target_mac == MacAddr::ZERO
        );
        let g = ArpPacket::gratuitous_reply(mac(9), ip);
        assert!(
            g.is_gratuitous()
                && g.operation == ArpOperation::Reply
                && g.target_mac == MacAddr::BROADCAST
        );
        assert!(!a.is_probe());
        assert!(ArpPacket::request(mac(1), Ipv4Addr::UNSPECIFIED, ip).is_probe());
    }

    #[test]
    fn other_hardware_protocols_and_operations_are_refused_by_name() {
        let mut bytes = Vec::new();
        ArpPacket::request(mac(1), Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST).write(&mut bytes);
        let mut b = bytes.clone();
        b[1] = 6; // IEEE 802
        assert_eq!(
            ArpPacket::parse(&b),
            Err(WireError::Unsupported {
                what: "ARP hardware type",
                value: 6
            })
        );
        let mut b = bytes.clone();
        b[2] = 0x86;
        b[3] = 0xdd;
        assert!(matches!(
            ArpPacket::parse(&b),
            Err(WireError::Unsupported {
                what: "ARP protocol type",
                ..
            })
        ));
        let mut b = bytes.clone();
        b[4] = 8;
        assert!(matches!(
            ArpPacket::parse(&b),
            Err(WireError::Invalid { .. })
        ));
        let mut b = bytes.clone();
        b[7] = 3; // RARP request
        assert_eq!(
            ArpPacket::parse(&b),
            Err(WireError::Unsupported {
                what: "ARP operation",
                value: 3
            })
        );
        assert!(matches!(
            ArpPacket::parse(&bytes[..27]),
            Err(WireError::Truncated {
                what: "ARP addresses",
                ..
            })
        ));
    }

    fn arb_packet() -> impl Strategy<Value = ArpPacket> {
        (
            any::<bool>(),
            any::<[u8; 6]>(),
            any::<u32>(),
            any::<[u8; 6]>(),
            any::<u32>(),
        )
            .prop_map(|(req, sm, si, tm, ti)| ArpPacket {
                operation: if req {
                    ArpOperation::Request
                } else {
                    ArpOperation::Reply
                },
                sender_mac: MacAddr(sm),
                sender_ip: si.into(),
                target_mac: MacAddr(tm),
                target_ip: ti.into(),
            })
    }

    proptest! {
        #[test]
        fn parse_inverts_write(p in arb_packet(), padding in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut bytes = Vec::new();
            p.write(&mut bytes);
            prop_assert_eq!(bytes.len(), ArpPacket::LEN);
            bytes.extend_from_slice(&padding);
            prop_assert_eq!(ArpPacket::parse(&bytes), Ok(p));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ArpPacket::parse(&bytes);
            if let Ok(eth) = EthernetFrame::parse(&bytes) {
                let _ = ArpPacket::parse(eth.payload);
            }
        }
    }
}
