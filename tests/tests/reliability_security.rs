//! Security checks from the outside: a raw peer (the injector) at a configured address tries
//! what a misconfigured or hostile neighbour would, and our speaker (the `bgp-harness`
//! process) refuses each with what RFC 4271 §6.2 / RFC 5082 / RFC 2385 prescribe, while its
//! FRR session goes on untouched (`reliability_lab`).
//!
//! - OPEN checks: wrong peer AS (in My AS and in the 4-octet capability), BGP identifier 0,
//!   our own identifier on iBGP, hold time 2, version 3, no common family — each answered
//!   with its NOTIFICATION, the session never Established.
//! - A second connection from a peer that is Established (without graceful restart) is
//!   closed; the session stays.
//! - GTSM (`ttl-security 1`): packets sent with TTL 254 never reach the speaker; TTL 255 does.
//! - TCP MD5: with a key configured, a peer without one never gets a connection (the
//!   kernel's TCPMD5NotFound counter says why).
//!
//! Connections from addresses that are no peer's are in `reliability_load` (the flood) and in
//! the speaker's own tests; MD5 with the right key is proven against FRR, GoBGP and BIRD in
//! the interop tests.

#![allow(clippy::unwrap_used)]

mod common;
mod reliability_lab;

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp::wire::{Capability, Family, Message, Open};
use common::wait;
use frr_lab::lab_available;
use reliability_lab::{INJ, INJ_AS, RelLab, inj_peer};
use serde_json::json;
use tests::injector::{self, ConnectOptions, Injector, Outcome};

/// Connects from the injector's address until the speaker answers with its OPEN (a passive
/// session that just failed refuses connections during its idle hold time), then sends
/// `bytes` and returns what comes back. `Closed` when no connection got an OPEN for 3 s.
fn try_raw(rl: &RelLab, bytes: &[u8]) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(mut inj) = Injector::connect(&rl.inj_ns(), INJ.parse().unwrap(), rl.node_addr())
            && let Ok(Some(Message::Open(_))) = inj.next_message(Duration::from_secs(2))
        {
            inj.send_raw(bytes).unwrap();
            return inj.outcome(Duration::from_secs(5));
        }
        if std::time::Instant::now() >= deadline {
            return Outcome::Closed;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn try_open(rl: &RelLab, open: &Open) -> Outcome {
    let bytes = Message::Open(open.clone())
        .to_bytes(&bgp::wire::EncodeContext::default())
        .unwrap();
    try_raw(rl, &bytes)
}

fn raw_open(version: u8, my_as: u16, hold: u16, id: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&29u16.to_be_bytes());
    m.push(1);
    m.push(version);
    m.extend_from_slice(&my_as.to_be_bytes());
    m.extend_from_slice(&hold.to_be_bytes());
    m.extend_from_slice(&id);
    m.push(0);
    m
}

fn expect(outcome: Outcome, code: u8, subcode: u8, what: &str) -> Vec<u8> {
    match outcome {
        Outcome::Notification(n) => {
            assert_eq!(
                (n.code, n.subcode),
                (code, subcode),
                "{what}: {}",
                n.describe()
            );
            eprintln!("refused: {what}: {}", n.describe());
            n.data
        }
        other => panic!("{what}: {other:?} instead of NOTIFICATION {code}/{subcode}"),
    }
}

fn update_inj(rl: &RelLab, p: bgp::speaker::PeerConfig) {
    rl.harness
        .request(json!({"cmd": "update-peer", "config": serde_json::to_value(p).unwrap()}))
        .unwrap();
}

fn never_established(rl: &RelLab, what: &str) {
    let st = rl.inj_state();
    assert_ne!(st["state"], "established", "{what}: {st}");
    assert_eq!(
        st["flaps"], 0,
        "{what}: the session was up at some point: {st}"
    );
}

fn md5_not_found(rl: &RelLab) -> u64 {
    let out = rl
        .lab
        .exec_ok("node1", "nstat", &["-az", "TcpExtTCPMD5NotFound"])
        .unwrap_or_default();
    out.lines()
        .find(|l| l.starts_with("TcpExtTCPMD5NotFound"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bad_opens_wrong_ttls_missing_md5_keys_and_second_connections_are_refused() {
    if !lab_available() {
        return;
    }
    let rl = RelLab::up("sec", |_| {});
    let id: Ipv4Addr = INJ.parse().unwrap();

    // OPEN checks (RFC 4271 §6.2, RFC 6793, RFC 6286, RFC 5492).
    let d = expect(
        try_open(&rl, &injector::open(65099, 0, id)),
        2,
        2,
        "peer AS 65099 where 65002 is configured",
    );
    assert_eq!(d, 65099u16.to_be_bytes(), "Bad Peer AS carries My AS");
    let mut four = injector::open(4_200_000_000, 0, id);
    four.my_as = 23456;
    expect(
        try_open(&rl, &four),
        2,
        2,
        "4-octet AS 4200000000 (My AS AS_TRANS) where 65002 is configured",
    );
    expect(
        try_raw(&rl, &raw_open(4, INJ_AS as u16, 0, [0, 0, 0, 0])),
        2,
        3,
        "BGP identifier 0.0.0.0",
    );
    let d = expect(
        try_raw(&rl, &raw_open(3, INJ_AS as u16, 0, id.octets())),
        2,
        1,
        "version 3",
    );
    assert_eq!(
        d,
        vec![0, 4],
        "Unsupported Version Number carries the version we speak"
    );
    expect(
        try_raw(&rl, &raw_open(4, INJ_AS as u16, 2, id.octets())),
        2,
        6,
        "hold time 2",
    );
    let multicast = Open::new(
        INJ_AS,
        0,
        id,
        vec![
            Capability::Multiprotocol(Family::new(1, 2)),
            Capability::FourOctetAs(INJ_AS),
        ],
    );
    expect(
        try_open(&rl, &multicast),
        2,
        7,
        "only IPv4 multicast offered",
    );
    never_established(&rl, "bad OPENs");
    rl.assert_tor_untouched("bad OPENs");

    // iBGP with our own identifier (RFC 6286 §2.2).
    let mut ibgp = inj_peer();
    ibgp.peer_as = 65001;
    update_inj(&rl, ibgp);
    expect(
        try_open(&rl, &injector::open(65001, 0, "10.0.0.2".parse().unwrap())),
        2,
        3,
        "iBGP peer with our own identifier 10.0.0.2",
    );
    update_inj(&rl, inj_peer());

    // A second connection from an Established peer without graceful restart: closed, and
    // the session carries on (RFC 4271 §6.8: the Established connection wins).
    let mut first = rl.inject(0);
    let flaps = rl.inj_state()["flaps"].clone();
    let second = try_open(&rl, &injector::open(INJ_AS, 0, id));
    assert_eq!(second, Outcome::Closed, "the second connection");
    assert_eq!(first.outcome(Duration::from_millis(500)), Outcome::Quiet);
    let st = rl.inj_state();
    assert_eq!(st["state"], "established", "{st}");
    assert_eq!(st["flaps"], flaps, "{st}");
    drop(first);
    wait("the first session down", Duration::from_secs(10), |_| {
        (rl.inj_state()["state"] != "established").then_some(())
    });

    // GTSM: one hop allowed, so only TTL 255 is accepted (RFC 5082).
    let mut gtsm = inj_peer();
    gtsm.ttl_security = Some(1);
    update_inj(&rl, gtsm);
    let flaps_before = rl.inj_state()["flaps"].as_u64().unwrap();
    let open = injector::open(INJ_AS, 0, id);
    let with_ttl = |ttl: u32| {
        // Until the speaker's OPEN comes (a reset session refuses during its idle hold).
        wait(
            &format!("the OPEN over TTL {ttl}"),
            Duration::from_secs(10),
            |_| {
                let opts = ConnectOptions {
                    local: Some(INJ.parse().unwrap()),
                    ttl: Some(ttl),
                    ..ConnectOptions::default()
                };
                let s = injector::connect_in(&rl.inj_ns(), rl.node_addr(), opts).ok()?;
                let mut inj = Injector::new(s);
                match inj.next_message(Duration::from_secs(2)) {
                    Ok(Some(Message::Open(_))) => Some(inj),
                    _ => None,
                }
            },
        )
    };
    // TTL 254: our OPEN arrives (the handshake is the listener's, which serves every peer),
    // but nothing the injector sends gets through: no KEEPALIVE answers its OPEN.
    let mut low = with_ttl(254);
    low.send(&Message::Open(open.clone())).unwrap();
    assert_eq!(
        low.outcome(Duration::from_secs(4)),
        Outcome::Quiet,
        "TTL 254"
    );
    let st = rl.inj_state();
    assert_eq!(
        st["state"], "opensent",
        "TTL 254: the OPEN must not arrive: {st}"
    );
    eprintln!("GTSM: TTL 254 dropped after the handshake (the session waits in OpenSent)");
    // TTL 255 from the same address gets through, even while that connection lingers.
    let mut ok = with_ttl(255);
    ok.send(&Message::Open(open.clone())).unwrap();
    let got = ok.next_message(Duration::from_secs(4)).unwrap();
    assert_eq!(got, Some(Message::Keepalive), "TTL 255");
    ok.send(&Message::Keepalive).unwrap();
    wait("GTSM session Established", Duration::from_secs(5), |_| {
        (rl.inj_state()["state"] == "established").then_some(())
    });
    assert_eq!(
        rl.inj_state()["flaps"].as_u64().unwrap(),
        flaps_before,
        "no session before the TTL-255 one"
    );
    eprintln!("GTSM: TTL 255 accepted and Established");
    drop(low);
    rl.assert_tor_untouched("GTSM");

    // TCP MD5 (RFC 2385): with a key configured, a peer without one gets no connection.
    let mut md5 = inj_peer();
    md5.password = Some("s3cret".into());
    update_inj(&rl, md5);
    wait("the GTSM session reset", Duration::from_secs(10), |_| {
        (rl.inj_state()["state"] != "established").then_some(())
    });
    let not_found = md5_not_found(&rl);
    let opts = ConnectOptions {
        local: Some(INJ.parse().unwrap()),
        timeout: Duration::from_secs(3),
        ..ConnectOptions::default()
    };
    let r = injector::connect_in(&rl.inj_ns(), rl.node_addr(), opts);
    assert!(r.is_err(), "a connection without the MD5 key: {r:?}");
    let counted = md5_not_found(&rl) - not_found;
    assert!(
        counted >= 1,
        "TCPMD5NotFound did not count the unsigned SYNs"
    );
    eprintln!(
        "MD5: unsigned connection refused ({:?}); TcpExtTCPMD5NotFound +{counted}",
        r.err().map(|e| e.kind())
    );
    assert_ne!(rl.inj_state()["state"], "established");
    rl.assert_tor_untouched("TCP MD5");
}
