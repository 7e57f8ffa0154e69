//! RFC 7606 in practice: a raw peer (the injector) sends our speaker every class of malformed
//! UPDATE, and the speaker does exactly what RFC 4271 §6 as revised by RFC 7606 says — the
//! table of `docs/bgp-wire.md` — while its session with an FRR tor goes on untouched.
//!
//! For each case the test asserts on the wire and on the routers: what the injector receives
//! (nothing, or the NOTIFICATION with the right code, subcode and data), what our Adj-RIB-In
//! holds, what FRR holds (an injected prefix reaches FRR through us, and leaves FRR when it is
//! treated as withdrawn or its session is reset), that the tor's session is the same one
//! (`bgpTimerUpEstablishedEpoch`, `connectionsEstablished`), and that our log has exactly one
//! warning for the event, naming the peer and what was wrong.
//!
//! Topology: `reliability_lab` (FRR tor, our speaker, the injector on one bridge).

#![allow(clippy::unwrap_used)]

mod common;
mod reliability_lab;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::wait;
use frr_lab::lab_available;
use reliability_lab::{INJ, RelLab};
use tests::injector::{
    Injector, Outcome, as_path, attr, med, next_hop, origin_igp, prefix4, update,
    update_with_lengths,
};

fn inj_nh() -> Ipv4Addr {
    INJ.parse().unwrap()
}

/// ORIGIN, AS_PATH 65002, NEXT_HOP 10.0.0.3: a valid attribute set.
fn valid_attrs() -> Vec<u8> {
    [origin_igp(), as_path(&[65002]), next_hop(inj_nh())].concat()
}

fn announce(inj: &mut Injector, prefix: &str, attrs: &[u8]) {
    inj.send_raw(&update(&[], attrs, &prefix4(prefix))).unwrap();
}

/// Announces `prefix` validly and waits until FRR has it from us.
fn announce_through(rl: &RelLab, inj: &mut Injector, prefix: &str) {
    announce(inj, prefix, &valid_attrs());
    wait(&format!("{prefix} on FRR"), Duration::from_secs(10), |_| {
        rl.frr_has(prefix).then_some(())
    });
}

/// Waits for the one warning an event must log, then checks that it is the only one and
/// that it says what it must.
fn one_warning(rl: &RelLab, mark: usize, case: &str, must_contain: &[&str]) -> String {
    wait(
        &format!("the warning for {case}"),
        Duration::from_secs(5),
        |last| {
            let w = rl.warnings_since(mark);
            *last = format!("{w:?}");
            (!w.is_empty()).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let w = rl.warnings_since(mark);
    assert_eq!(w.len(), 1, "{case}: one warning, not {w:#?}");
    for s in must_contain.iter().chain(&["peer=inj"]) {
        assert!(
            w[0].contains(s),
            "{case}: the warning lacks {s:?}: {}",
            w[0]
        );
    }
    eprintln!("  logged: {}", w[0]);
    w[0].clone()
}

struct Case {
    name: &'static str,
    message: Vec<u8>,
    /// What the warning must say besides the peer.
    says: &'static [&'static str],
}

/// RFC 7606 §3(c), §3(d), §4, §7.2-§7.7: the session survives, the UPDATE's prefixes are
/// treated as withdrawn.
fn treat_as_withdraw_cases(p: &str) -> Vec<Case> {
    let nlri = prefix4(p);
    let o = origin_igp();
    let a = as_path(&[65002]);
    let nh = next_hop(inj_nh());
    let overrun = [
        o.clone(),
        a.clone(),
        nh.clone(),
        vec![0x80, 4, 200, 0, 0, 0, 1],
    ]
    .concat();
    vec![
        Case {
            name: "bad attribute length: NEXT_HOP of 5 octets",
            message: update(
                &[],
                &[o.clone(), a.clone(), attr(0x40, 3, &[10, 0, 0, 3, 0], None)].concat(),
                &nlri,
            ),
            says: &["attribute type 3", "TreatAsWithdraw"],
        },
        Case {
            name: "bad attribute length: MULTI_EXIT_DISC of 3 octets",
            message: update(
                &[],
                &[valid_attrs(), attr(0x80, 4, &[0, 0, 1], None)].concat(),
                &nlri,
            ),
            says: &["attribute type 4", "TreatAsWithdraw"],
        },
        Case {
            name: "bad flags: ORIGIN marked optional",
            message: update(
                &[],
                &[attr(0xc0, 1, &[0], None), a.clone(), nh.clone()].concat(),
                &nlri,
            ),
            says: &["attribute type 1", "TreatAsWithdraw"],
        },
        Case {
            name: "missing mandatory attribute: no ORIGIN",
            message: update(&[], &[a.clone(), nh.clone()].concat(), &nlri),
            says: &["TreatAsWithdraw"],
        },
        Case {
            name: "missing mandatory attribute: no NEXT_HOP",
            message: update(&[], &[o.clone(), a.clone()].concat(), &nlri),
            says: &["TreatAsWithdraw"],
        },
        Case {
            name: "malformed AS_PATH: a segment of 3 ASNs holding 1",
            message: update(
                &[],
                &[
                    o.clone(),
                    attr(0x40, 2, &[2, 3, 0, 0, 0xfd, 0xea], None),
                    nh.clone(),
                ]
                .concat(),
                &nlri,
            ),
            says: &["attribute type 2", "TreatAsWithdraw"],
        },
        Case {
            name: "malformed AS_PATH: segment type 7",
            message: update(
                &[],
                &[
                    o.clone(),
                    attr(0x40, 2, &[7, 1, 0, 0, 0xfd, 0xea], None),
                    nh.clone(),
                ]
                .concat(),
                &nlri,
            ),
            says: &["attribute type 2", "TreatAsWithdraw"],
        },
        Case {
            name: "bad attribute length: the last attribute overruns the attribute list",
            message: update(&[], &overrun, &nlri),
            says: &["TreatAsWithdraw"],
        },
    ]
}

/// RFC 7606 §3(g), §7.6, §7.7, RFC 6793: the attribute goes, the prefix stays.
/// Whether the attribute is gone from a path (its `attrs` as the harness shows them).
type Gone = fn(&serde_json::Value) -> bool;

/// The NOTIFICATION expected: code, subcode, and the data where the RFC prescribes it.
type Expected = (u8, u8, Option<Vec<u8>>);

fn discard_cases(p: &str) -> Vec<(Case, Gone)> {
    let nlri = prefix4(p);
    vec![
        (
            Case {
                name: "bad attribute length: ATOMIC_AGGREGATE of 1 octet",
                message: update(
                    &[],
                    &[valid_attrs(), attr(0x40, 6, &[0], None)].concat(),
                    &nlri,
                ),
                says: &["attribute type 6", "AttributeDiscard"],
            },
            |path| path.get("atomic_aggregate").is_none(),
        ),
        (
            Case {
                name: "bad attribute length: AGGREGATOR of 5 octets",
                message: update(
                    &[],
                    &[valid_attrs(), attr(0xc0, 7, &[0, 0, 1, 2, 3], None)].concat(),
                    &nlri,
                ),
                says: &["attribute type 7", "AttributeDiscard"],
            },
            |path| path.get("aggregator").is_none(),
        ),
        (
            Case {
                name: "duplicate attributes: MULTI_EXIT_DISC 10 then 20",
                message: update(&[], &[valid_attrs(), med(10), med(20)].concat(), &nlri),
                says: &["attribute type 4", "AttributeDiscard"],
            },
            |path| path["med"] == 10,
        ),
        (
            Case {
                name: "AS4_PATH on a 4-octet session",
                message: update(
                    &[],
                    &[
                        valid_attrs(),
                        attr(0xc0, 17, &[2, 1, 0, 0, 0xfd, 0xea], None),
                    ]
                    .concat(),
                    &nlri,
                ),
                says: &["attribute type 17", "AttributeDiscard"],
            },
            |path| path.get("as4_path").is_none(),
        ),
    ]
}

/// MP_REACH_NLRI for IPv6 unicast with a next hop of `nh_len` octets (all 0xfd) and one /64.
fn mp_reach_v6(nh_len: u8) -> Vec<u8> {
    let mut v = vec![0, 2, 1, nh_len];
    v.extend(std::iter::repeat_n(0xfd, usize::from(nh_len)));
    v.push(0);
    v.extend_from_slice(&[64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]);
    attr(0x80, 14, &v, None)
}

/// The cases that end the session, with the NOTIFICATION (code, subcode, data when the RFC
/// prescribes it) the injector must receive.
fn reset_cases(p: &str) -> Vec<(Case, Expected)> {
    let nlri = prefix4(p);
    let unknown = attr(0x40, 99, &[1, 2, 3], None);
    let mut short = vec![0xff; 16];
    short.extend_from_slice(&[0, 18, 4]);
    vec![
        (
            Case {
                name: "bad NLRI length: a /33",
                message: update(&[], &valid_attrs(), &[33, 10, 1, 2, 3, 4]),
                says: &["undecodable message"],
            },
            (3, 10, None),
        ),
        (
            Case {
                name: "bad withdrawn routes length: overruns the UPDATE",
                message: update_with_lengths(&[], &valid_attrs(), &nlri, Some(500), None),
                says: &["undecodable message"],
            },
            (3, 1, None),
        ),
        (
            Case {
                name: "bad total path attribute length: overruns the UPDATE",
                message: update_with_lengths(&[], &valid_attrs(), &nlri, None, Some(2000)),
                says: &["undecodable message"],
            },
            (3, 1, None),
        ),
        (
            Case {
                name: "bad MP_REACH_NLRI next hop: 5 octets for IPv6",
                message: update(&[], &[valid_attrs(), mp_reach_v6(5)].concat(), &[]),
                says: &["undecodable message"],
            },
            (3, 9, None),
        ),
        (
            Case {
                name: "duplicate attributes: MP_REACH_NLRI twice",
                message: update(
                    &[],
                    &[valid_attrs(), mp_reach_v6(16), mp_reach_v6(16)].concat(),
                    &[],
                ),
                says: &["undecodable message"],
            },
            (3, 1, None),
        ),
        (
            Case {
                name: "unknown well-known attribute: type 99 without the optional bit",
                message: update(&[], &[valid_attrs(), unknown.clone()].concat(), &nlri),
                says: &["undecodable message"],
            },
            (3, 2, Some(unknown)),
        ),
        (
            Case {
                name: "bad message length: a header saying 18",
                message: short,
                says: &["undecodable message"],
            },
            (1, 2, Some(vec![0, 18])),
        ),
    ]
}

#[test]
fn every_class_of_malformed_update_gets_the_rfc_7606_action_and_the_tor_session_goes_on() {
    if !lab_available() {
        return;
    }
    let rl = RelLab::up("r7606", |_| {});
    let mut inj = rl.inject(0);
    let flaps = |rl: &RelLab| rl.inj_state()["flaps"].as_u64().unwrap_or(0);

    // Treat-as-withdraw: the prefix was there (on FRR through us); after the malformed
    // UPDATE it is gone from our Adj-RIB-In and from FRR, and the session is the same.
    let p = "198.51.100.0/24";
    for case in treat_as_withdraw_cases(p) {
        announce_through(&rl, &mut inj, p);
        let before = flaps(&rl);
        let mark = rl.log_mark();
        inj.send_raw(&case.message).unwrap();
        wait(case.name, Duration::from_secs(10), |last| {
            let ours = rl.inj_path(p);
            let frr = rl.frr_has(p);
            *last = format!("ours {ours:?}, FRR {frr}");
            (ours.is_none() && !frr).then_some(())
        });
        let w = one_warning(&rl, mark, case.name, case.says);
        assert!(w.contains("treated as withdrawn"), "{}: {w}", case.name);
        assert_eq!(
            inj.outcome(Duration::from_millis(300)),
            Outcome::Quiet,
            "{}",
            case.name
        );
        assert_eq!(rl.inj_state()["state"], "established", "{}", case.name);
        assert_eq!(flaps(&rl), before, "{}", case.name);
        rl.assert_tor_untouched(case.name);
        eprintln!("treat-as-withdraw  ok: {}", case.name);
    }

    // Attribute-discard: the prefix arrives (on FRR too) without the bad attribute.
    let p = "198.51.101.0/24";
    for (case, attribute_gone) in discard_cases(p) {
        inj.send_raw(&update(&prefix4(p), &[], &[])).unwrap();
        wait("the withdrawal", Duration::from_secs(10), |_| {
            (!rl.frr_has(p)).then_some(())
        });
        let mark = rl.log_mark();
        inj.send_raw(&case.message).unwrap();
        let path = wait(case.name, Duration::from_secs(10), |last| {
            let ours = rl.inj_path(p);
            *last = format!("{ours:?}");
            ours.filter(|_| rl.frr_has(p))
        });
        let attrs = &path["attrs"];
        assert!(
            attrs["origin"] == "igp" && attrs["as_path"] == "65002",
            "{}: the rest of the attributes is there: {path}",
            case.name
        );
        assert!(attribute_gone(attrs), "{}: {path}", case.name);
        let w = one_warning(&rl, mark, case.name, case.says);
        assert!(w.contains("attributes discarded"), "{}: {w}", case.name);
        assert_eq!(inj.outcome(Duration::from_millis(300)), Outcome::Quiet);
        rl.assert_tor_untouched(case.name);
        eprintln!("attribute-discard  ok: {}", case.name);
    }

    // Session reset: the NOTIFICATION the RFC names reaches the injector, its routes leave
    // us and FRR, and the tor's session does not notice.
    let p = "198.51.102.0/24";
    for (case, (code, subcode, data)) in reset_cases(p) {
        announce_through(&rl, &mut inj, p);
        let mark = rl.log_mark();
        inj.send_raw(&case.message).unwrap();
        match inj.outcome(Duration::from_secs(5)) {
            Outcome::Notification(n) => {
                assert_eq!(
                    (n.code, n.subcode),
                    (code, subcode),
                    "{}: {}",
                    case.name,
                    n.describe()
                );
                if let Some(d) = &data {
                    assert_eq!(&n.data, d, "{}: NOTIFICATION data", case.name);
                }
                eprintln!("session reset      ok: {}: {}", case.name, n.describe());
            }
            other => panic!("{}: {other:?} instead of a NOTIFICATION", case.name),
        }
        wait(
            &format!("{p} gone after {}", case.name),
            Duration::from_secs(10),
            |_| (rl.inj_path(p).is_none() && !rl.frr_has(p)).then_some(()),
        );
        one_warning(&rl, mark, case.name, case.says);
        rl.assert_tor_untouched(case.name);
        inj = rl.inject(0);
    }
    let st = rl.inj_state();
    assert_eq!(st["state"], "established", "{st}");
}
