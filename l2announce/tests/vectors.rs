//! The frames of `tests/vectors/frames.txt`, captured from arping, ndisc6 and Linux (see
//! `capture_vectors.rs`): each decodes to what the tool sent, and where the kernel answered or
//! announced, our builders produce the kernel's bytes exactly (checksums included).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use l2announce::wire::{
    ArpOperation, ArpPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, MacAddr, NdpMessage,
    NeighborAdvertisement, NeighborSolicitation,
};

fn frames() -> BTreeMap<String, Vec<u8>> {
    include_str!("vectors/frames.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap();
            (name.to_owned(), hex::decode(hex.trim()).unwrap())
        })
        .collect()
}

fn arp(frame: &[u8]) -> (EthernetFrame<'_>, ArpPacket) {
    let eth = EthernetFrame::parse(frame).unwrap();
    assert_eq!(eth.ethertype, ETHERTYPE_ARP);
    (eth, ArpPacket::parse(eth.payload).unwrap())
}

fn ndp(frame: &[u8]) -> (EthernetFrame<'_>, NdpMessage) {
    let eth = EthernetFrame::parse(frame).unwrap();
    assert_eq!(eth.ethertype, ETHERTYPE_IPV6);
    (eth, NdpMessage::parse(eth.payload).unwrap())
}

const A: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

/// Our frames are padded to 60 octets; the kernel leaves padding to the NIC (a veth has none).
fn assert_same_frame(ours: &[u8], kernel: &[u8]) {
    assert_eq!(
        &ours[..kernel.len()],
        kernel,
        "ours {} kernel {}",
        hex::encode(ours),
        hex::encode(kernel)
    );
    assert!(ours[kernel.len()..].iter().all(|b| *b == 0));
}

#[test]
fn every_captured_frame_decodes() {
    let frames = frames();
    assert!(frames.len() >= 10, "{:?}", frames.keys());
    for (name, f) in &frames {
        if name.starts_with("arp") {
            arp(f);
        } else {
            ndp(f);
        }
    }
}

#[test]
fn arpings_request_decodes_to_a_who_has() {
    let f = frames();
    let (eth, req) = arp(&f["arp-request-1"]);
    assert_eq!(eth.dst, MacAddr::BROADCAST);
    assert_eq!(
        (
            req.operation,
            req.sender_mac,
            req.sender_ip,
            req.target_mac,
            req.target_ip
        ),
        (ArpOperation::Request, eth.src, A, MacAddr::ZERO, B)
    );
}

#[test]
fn our_reply_to_a_request_is_the_kernels_reply() {
    let f = frames();
    let (_, req) = arp(&f["arp-request-1"]);
    let (eth, kernel) = arp(&f["arp-reply-1"]);
    let b_mac = eth.src;
    assert_eq!(req.reply(b_mac), kernel);
    assert_same_frame(
        &req.reply(b_mac).to_frame(req.sender_mac, b_mac),
        &f["arp-reply-1"],
    );
}

#[test]
fn our_announcement_is_the_kernels_gratuitous_arp() {
    let f = frames();
    let (eth, kernel) = arp(&f["arp-gratuitous-request-2"]);
    assert!(kernel.is_gratuitous());
    assert_eq!(kernel.sender_ip, B);
    assert_same_frame(
        &ArpPacket::announcement(eth.src, B).to_frame(MacAddr::BROADCAST, eth.src),
        &f["arp-gratuitous-request-2"],
    );
}

#[test]
fn arpings_unsolicited_request_is_gratuitous_with_a_broadcast_target() {
    let f = frames();
    let (_, g) = arp(&f["arp-gratuitous-request-1"]);
    assert!(g.is_gratuitous() && g.operation == ArpOperation::Request);
    assert_eq!((g.sender_ip, g.target_mac), (A, MacAddr::BROADCAST));
}

#[test]
fn our_answers_to_ndisc6_and_to_the_kernel_are_the_kernels_advertisements() {
    let f = frames();
    for (ns_name, na_name) in [
        (
            "ndp-solicitation-multicast-1",
            "ndp-advertisement-solicited-1",
        ),
        (
            "ndp-solicitation-multicast-2",
            "ndp-advertisement-solicited-2",
        ),
    ] {
        let (ns_eth, NdpMessage::Solicitation(ns)) = ndp(&f[ns_name]) else {
            panic!("{ns_name} is not a solicitation")
        };
        assert_eq!(ns.target, "fd00:77::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ns.source_link_layer, Some(ns_eth.src));
        let (na_eth, NdpMessage::Advertisement(kernel)) = ndp(&f[na_name]) else {
            panic!("{na_name} is not an advertisement")
        };
        assert!(kernel.solicited && kernel.override_flag && !kernel.router);
        let ours = ns.answer(na_eth.src);
        assert_eq!(ours, kernel);
        assert_eq!(
            ours.to_frame(na_eth.src, ns_eth.src),
            f[na_name],
            "{na_name}"
        );
    }
}

#[test]
fn our_solicitation_is_the_kernels_solicitation() {
    let f = frames();
    let (eth, NdpMessage::Solicitation(kernel)) = ndp(&f["ndp-solicitation-multicast-2"]) else {
        panic!("not a solicitation")
    };
    let ours = NeighborSolicitation::new(kernel.src, kernel.target, eth.src);
    assert_eq!(
        ours.to_frame(eth.src, MacAddr::BROADCAST),
        f["ndp-solicitation-multicast-2"]
    );
}

#[test]
fn our_unsolicited_advertisement_is_the_kernels() {
    let f = frames();
    let (eth, NdpMessage::Advertisement(kernel)) = ndp(&f["ndp-advertisement-unsolicited-1"])
    else {
        panic!("not an advertisement")
    };
    assert!(kernel.override_flag && !kernel.solicited);
    let ours = NeighborAdvertisement::unsolicited(kernel.target, eth.src);
    assert_eq!(
        ours.to_frame(eth.src, MacAddr::BROADCAST),
        f["ndp-advertisement-unsolicited-1"]
    );
}
