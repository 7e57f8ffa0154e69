//! The check behind the `l2_frame` fuzz target: any octets as an Ethernet frame through the
//! parsers the ARP/NDP responder uses (`EthernetFrame::parse`, then `ArpPacket::parse` or
//! `NdpMessage::parse` by EtherType; the first octet also sends the rest straight to one of
//! them). Panics when a parser panics, or when what parsed does not survive being written
//! again: an ARP packet, and the reply built from it, parse back to themselves; a neighbour
//! solicitation's answer and an advertisement, written as frames, parse back to themselves
//! with a valid checksum.
#![allow(dead_code)]

use l2announce::wire::arp::ArpPacket;
use l2announce::wire::ndp::NdpMessage;
use l2announce::wire::{
    ETHERNET_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, MacAddr,
};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);

fn arp(payload: &[u8]) {
    let Ok(p) = ArpPacket::parse(payload) else {
        return;
    };
    let mut out = Vec::new();
    p.write(&mut out);
    assert_eq!(out.len(), ArpPacket::LEN);
    assert_eq!(ArpPacket::parse(&out).ok(), Some(p), "ARP re-encoding");
    let reply = p.reply(OUR_MAC);
    let frame = reply.to_frame(p.sender_mac, OUR_MAC);
    let eth = EthernetFrame::parse(&frame).expect("our reply frame parses");
    assert_eq!(eth.ethertype, ETHERTYPE_ARP);
    assert_eq!(ArpPacket::parse(eth.payload).ok(), Some(reply), "ARP reply");
}

fn ndp(packet: &[u8]) {
    let Ok(m) = NdpMessage::parse(packet) else {
        return;
    };
    let (frame, want) = match m {
        NdpMessage::Solicitation(ns) => {
            let na = ns.answer(OUR_MAC);
            let to = ns.source_link_layer.unwrap_or(MacAddr([2, 0, 0, 0, 0, 2]));
            // A solicitation of ours for the same target must parse as well.
            let again = ns.to_frame(OUR_MAC, to);
            let eth = EthernetFrame::parse(&again).expect("our NS frame parses");
            assert_eq!(
                NdpMessage::parse(eth.payload).ok(),
                Some(NdpMessage::Solicitation(ns)),
                "NS re-encoding"
            );
            (na.to_frame(OUR_MAC, to), NdpMessage::Advertisement(na))
        }
        NdpMessage::Advertisement(na) => (na.to_frame(OUR_MAC, OUR_MAC), m),
    };
    let eth = EthernetFrame::parse(&frame).expect("our NDP frame parses");
    assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
    assert_eq!(
        NdpMessage::parse(eth.payload).ok(),
        Some(want),
        "NDP re-encoding"
    );
}

/// Runs one input; panics when a property fails.
pub fn l2_frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(eth) = EthernetFrame::parse(rest) else {
                assert!(
                    rest.len() < ETHERNET_HEADER_LEN,
                    "a whole header did not parse"
                );
                return;
            };
            match eth.ethertype {
                ETHERTYPE_ARP => arp(eth.payload),
                ETHERTYPE_IPV6 => ndp(eth.payload),
                _ => {}
            }
        }
        1 => arp(rest),
        _ => ndp(rest),
    }
}
