use super::*;
use crate::wire::{NeighborSolicitation, ndp::ALL_NODES};
use std::net::Ipv4Addr;

const OURS: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);
const CLIENT: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn vip4() -> IpAddr {
    "192.168.10.211".parse().unwrap()
}

fn vip6() -> IpAddr {
    "fd00:10::211".parse().unwrap()
}

fn holds(a: IpAddr) -> bool {
    a == vip4() || a == vip6()
}

fn arp_request(target: &str) -> Vec<u8> {
    ArpPacket::request(
        CLIENT,
        Ipv4Addr::new(192, 168, 10, 1),
        target.parse().unwrap(),
    )
    .to_frame(MacAddr::BROADCAST, CLIENT)
}

fn reply_of(a: Answer) -> Vec<u8> {
    match a {
        Answer::Reply(f) => f,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn an_arp_request_for_a_held_address_gets_a_unicast_reply_with_our_mac() {
    let f = reply_of(answer(&arp_request("192.168.10.211"), OURS, holds));
    let eth = EthernetFrame::parse(&f).unwrap();
    assert_eq!((eth.dst, eth.src), (CLIENT, OURS));
    let arp = ArpPacket::parse(eth.payload).unwrap();
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!((arp.sender_mac, IpAddr::V4(arp.sender_ip)), (OURS, vip4()));
    assert_eq!(
        (arp.target_mac, arp.target_ip),
        (CLIENT, Ipv4Addr::new(192, 168, 10, 1))
    );
}

#[test]
fn requests_for_other_addresses_and_our_own_frames_are_ignored() {
    assert_eq!(
        answer(&arp_request("192.168.10.212"), OURS, holds),
        Answer::Ignore
    );
    let own = ArpPacket::request(
        OURS,
        Ipv4Addr::new(192, 168, 10, 100),
        Ipv4Addr::new(192, 168, 10, 211),
    )
    .to_frame(MacAddr::BROADCAST, OURS);
    assert_eq!(answer(&own, OURS, holds), Answer::Ignore);
    // Replies and gratuitous announcements (someone else claiming it) are not questions.
    let reply = ArpPacket::request(
        CLIENT,
        Ipv4Addr::new(192, 168, 10, 1),
        Ipv4Addr::new(192, 168, 10, 211),
    )
    .reply(CLIENT)
    .to_frame(OURS, CLIENT);
    assert_eq!(answer(&reply, OURS, holds), Answer::Ignore);
    let garp = ArpPacket::announcement(CLIENT, Ipv4Addr::new(192, 168, 10, 211))
        .to_frame(MacAddr::BROADCAST, CLIENT);
    assert_eq!(answer(&garp, OURS, holds), Answer::Ignore);
}

#[test]
fn an_rfc_5227_probe_for_a_held_address_is_answered_so_the_prober_backs_off() {
    let probe = ArpPacket::request(
        CLIENT,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(192, 168, 10, 211),
    )
    .to_frame(MacAddr::BROADCAST, CLIENT);
    let f = reply_of(answer(&probe, OURS, holds));
    let arp = ArpPacket::parse(EthernetFrame::parse(&f).unwrap().payload).unwrap();
    assert_eq!(
        (arp.target_mac, arp.target_ip),
        (CLIENT, Ipv4Addr::UNSPECIFIED)
    );
}

#[test]
fn a_solicitation_for_a_held_address_gets_a_solicited_override_advertisement() {
    let ns = NeighborSolicitation::new(
        "fd00:10::1".parse().unwrap(),
        "fd00:10::211".parse().unwrap(),
        CLIENT,
    );
    let f = reply_of(answer(
        &ns.to_frame(CLIENT, MacAddr::BROADCAST),
        OURS,
        holds,
    ));
    let eth = EthernetFrame::parse(&f).unwrap();
    assert_eq!((eth.dst, eth.src), (CLIENT, OURS));
    let Ok(NdpMessage::Advertisement(na)) = NdpMessage::parse(eth.payload) else {
        panic!("not an NA")
    };
    assert!(na.solicited && na.override_flag && !na.router);
    assert_eq!(
        (IpAddr::V6(na.target), na.target_link_layer),
        (vip6(), Some(OURS))
    );
    assert_eq!(na.dst, "fd00:10::1".parse::<Ipv6Addr>().unwrap());
}

#[test]
fn a_duplicate_address_probe_for_a_held_address_is_answered_to_all_nodes() {
    let ns = NeighborSolicitation::new(
        Ipv6Addr::UNSPECIFIED,
        "fd00:10::211".parse().unwrap(),
        CLIENT,
    );
    let f = reply_of(answer(
        &ns.to_frame(CLIENT, MacAddr::BROADCAST),
        OURS,
        holds,
    ));
    let eth = EthernetFrame::parse(&f).unwrap();
    assert_eq!(eth.dst.to_string(), "33:33:00:00:00:01");
    let Ok(NdpMessage::Advertisement(na)) = NdpMessage::parse(eth.payload) else {
        panic!("not an NA")
    };
    assert_eq!(na.dst, ALL_NODES);
    assert!(!na.solicited);
}

#[test]
fn a_solicitation_without_a_link_layer_option_is_answered_to_the_frames_source() {
    let mut ns = NeighborSolicitation::new(
        "fd00:10::1".parse().unwrap(),
        "fd00:10::211".parse().unwrap(),
        CLIENT,
    );
    ns.source_link_layer = None;
    let f = reply_of(answer(
        &ns.to_frame(CLIENT, MacAddr::BROADCAST),
        OURS,
        holds,
    ));
    assert_eq!(EthernetFrame::parse(&f).unwrap().dst, CLIENT);
}

#[test]
fn a_corrupt_frame_is_counted_as_malformed_and_not_answered() {
    let mut f = arp_request("192.168.10.211");
    f.truncate(30);
    assert!(matches!(answer(&f, OURS, holds), Answer::Malformed(_)));
    let ns = NeighborSolicitation::new(
        "fd00:10::1".parse().unwrap(),
        "fd00:10::211".parse().unwrap(),
        CLIENT,
    );
    let mut f = ns.to_frame(CLIENT, MacAddr::BROADCAST);
    f[60] ^= 0xff; // inside the checksum
    assert!(matches!(
        answer(&f, OURS, holds),
        Answer::Malformed(WireError::BadChecksum { .. })
    ));
    assert!(matches!(
        answer(&[1, 2, 3], OURS, holds),
        Answer::Malformed(_)
    ));
}

#[test]
fn an_announcement_round_is_two_gratuitous_arps_or_one_unsolicited_na() {
    let v4 = announcement_frames(vip4(), OURS);
    assert_eq!(v4.len(), 2);
    let ops: Vec<_> = v4
        .iter()
        .map(|f| ArpPacket::parse(EthernetFrame::parse(f).unwrap().payload).unwrap())
        .collect();
    assert!(
        ops.iter()
            .all(|a| a.is_gratuitous() && a.sender_mac == OURS)
    );
    assert_eq!(ops[0].operation, ArpOperation::Request);
    assert_eq!(ops[1].operation, ArpOperation::Reply);
    let v6 = announcement_frames(vip6(), OURS);
    assert_eq!(v6.len(), 1);
    let Ok(NdpMessage::Advertisement(na)) =
        NdpMessage::parse(EthernetFrame::parse(&v6[0]).unwrap().payload)
    else {
        panic!()
    };
    assert!(na.override_flag && !na.solicited && na.dst == ALL_NODES);
}

#[test]
fn the_socket_filters_pass_exactly_the_frames_we_answer() {
    // Run the classic BPF programs over frames, as the kernel would.
    fn run(prog: &[(u16, u8, u8, u32)], frame: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0;
        while let Some(&(code, jt, jf, k)) = prog.get(pc) {
            pc += 1;
            match code {
                0x28 => {
                    a = frame
                        .get(k as usize..k as usize + 2)
                        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]).into())
                }
                0x30 => a = frame.get(k as usize).map_or(0, |b| (*b).into()),
                0x15 => pc += if a == k { jt as usize } else { jf as usize },
                0x06 => return k,
                _ => panic!("opcode {code:#x}"),
            }
        }
        panic!("fell off the program")
    }
    // socket2's SockFilter is opaque; the programs are rebuilt here from the same constants.
    let arp = [
        (0x28, 0, 0, 20),
        (0x15, 0, 1, 1),
        (0x06, 0, 0, 0x40000),
        (0x06, 0, 0, 0),
    ];
    let nd = [
        (0x30, 0, 0, 20),
        (0x15, 0, 3, 58),
        (0x30, 0, 0, 54),
        (0x15, 0, 1, 135),
        (0x06, 0, 0, 0x40000),
        (0x06, 0, 0, 0),
    ];
    assert_eq!(socket::arp_request_filter().len(), arp.len());
    assert_eq!(socket::neighbor_solicitation_filter().len(), nd.len());
    assert_ne!(run(&arp, &arp_request("192.168.10.211")), 0);
    let reply = ArpPacket::request(
        CLIENT,
        Ipv4Addr::new(192, 168, 10, 1),
        Ipv4Addr::new(192, 168, 10, 211),
    )
    .reply(OURS)
    .to_frame(CLIENT, OURS);
    assert_eq!(run(&arp, &reply), 0);
    let ns = NeighborSolicitation::new(
        "fd00:10::1".parse().unwrap(),
        "fd00:10::211".parse().unwrap(),
        CLIENT,
    );
    assert_ne!(run(&nd, &ns.to_frame(CLIENT, MacAddr::BROADCAST)), 0);
    let na = NeighborAdvertisement::unsolicited("fd00:10::211".parse().unwrap(), OURS)
        .to_frame(OURS, CLIENT);
    assert_eq!(run(&nd, &na), 0);
}
