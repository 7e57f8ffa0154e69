//! The lab of the reliability tests: our speaker (the `bgp-harness` process) between an FRR
//! tor and a raw injector (`tests::injector`), all on one bridge.
//!
//! ```text
//!   tor (FRR, AS 65000)         node1 (bgp-harness, AS 65001)        inj (injector, AS 65002)
//!   10.0.0.1 ───────────────────── sw1 ─ 10.0.0.2 :179 ───────────────── 10.0.0.3
//!   network 10.10.1.0/24          announces 172.20.0.0/24                10.0.0.100-115: not
//!   hold 9 s, keepalive 3 s       peers: tor (dials), inj (passive)      configured anywhere
//! ```
//!
//! node1's TCP send buffers are capped at 256 KiB (`net.ipv4.tcp_wmem`, per namespace) so
//! that a peer that stops reading fills the kernel's buffer with a table of modest size.
//!
//! Every test asserts that whatever the injector does, the tor's session is the one it was
//! before (FRR: still Established, same established time, no new connection) and the routes
//! both ways are still there: [`RelLab::assert_tor_untouched`].

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bgp::speaker::PeerConfig;
use frr_lab::{Lab, LabOptions, unique_prefix};
use serde_json::Value;
use tests::harness::{Harness, HarnessConfig};
use tests::injector::{self, Injector};

use crate::common::{self, wait};

pub const TOR: &str = "10.0.0.1";
pub const NODE: &str = "10.0.0.2";
pub const INJ: &str = "10.0.0.3";
pub const INJ_AS: u32 = 65002;
pub const TOR_ROUTE: &str = "10.10.1.0/24";
pub const OUR_ROUTE: &str = "172.20.0.0/24";
/// Addresses of the injector's namespace that no speaker knows.
pub const STRANGERS: std::ops::RangeInclusive<u8> = 100..=115;

pub const TOR_CONF: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.0.2 remote-as 65001
 neighbor 10.0.0.2 timers 3 9
 neighbor 10.0.0.2 timers connect 2
 !
 address-family ipv4 unicast
  network 10.10.1.0/24
 exit-address-family
exit
";

fn topology_yaml() -> String {
    let strangers: Vec<String> = STRANGERS.map(|i| format!("10.0.0.{i}/24")).collect();
    format!(
        "
name: rel
nodes:
  tor:
    kind: frr
    config: tor.conf
    interfaces: {{ eth1: [10.0.0.1/24] }}
  sw1: {{ kind: bridge }}
  node1:
    interfaces: {{ eth1: [10.0.0.2/24] }}
    sysctls: {{ net.ipv4.tcp_wmem: '4096 16384 262144' }}
  inj: {{ interfaces: {{ eth1: [10.0.0.3/24, {}] }} }}
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [inj:eth1, sw1:inj]
",
        strangers.join(", ")
    )
}

/// The tor's view of its session with our speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorSession {
    pub state: String,
    /// `bgpTimerUpEstablishedEpoch`: when FRR saw the session come up (to the second).
    pub established_epoch: i64,
    /// `connectionsEstablished`: how many times it came up.
    pub established_count: i64,
}

pub struct RelLab {
    pub lab: Lab,
    pub harness: Harness,
    pub tor_before: TorSession,
    log: PathBuf,
}

/// The injector's peer as our speaker configures it: passive, AS 65002, short timers so a
/// reset session accepts again within a second.
pub fn inj_peer() -> PeerConfig {
    let mut p = common::peer("inj", INJ, INJ_AS);
    p.passive = true;
    p.idle_hold_ms = 200;
    p.connect_retry = 1;
    p
}

impl RelLab {
    /// Brings the lab up with the harness configured by `tweak` (the injector's peer is
    /// `inj_peer()` unless `tweak` changes it), and waits until the tor's session is
    /// Established and the routes are through both ways.
    pub fn up(tag: &str, tweak: impl FnOnce(&mut HarnessConfig)) -> RelLab {
        let topo = common::topology(&topology_yaml(), TOR_CONF);
        let mut lab = Lab::up(topo, LabOptions::with_prefix(unique_prefix(tag))).unwrap();
        let mut cfg = common::harness_config(
            65001,
            NODE,
            vec![common::peer("tor", TOR, 65000), inj_peer()],
            vec![common::route(OUR_ROUTE)],
        );
        cfg.instance.listen_port = Some(179);
        tweak(&mut cfg);
        let harness = common::start(&mut lab, "node1", cfg);
        let log = lab.node_dir("node1").unwrap().join("bgp-harness.log");
        harness
            .wait_established("tor", Duration::from_secs(20))
            .unwrap();
        let mut rl = RelLab {
            lab,
            harness,
            tor_before: TorSession {
                state: String::new(),
                established_epoch: 0,
                established_count: 0,
            },
            log,
        };
        wait("the routes both ways", Duration::from_secs(20), |last| {
            let theirs = rl.loc_rib_has(TOR_ROUTE);
            let ours = rl.frr_has(OUR_ROUTE);
            *last = format!("ours on FRR {ours}, FRR's in ours {theirs}");
            (theirs && ours).then_some(())
        });
        rl.tor_before = rl.tor_session();
        assert_eq!(rl.tor_before.state, "Established");
        rl
    }

    pub fn inj_ns(&self) -> String {
        self.lab.namespace("inj")
    }

    pub fn node_addr(&self) -> SocketAddr {
        SocketAddr::new(NODE.parse().unwrap(), 179)
    }

    /// Connects as the configured injector peer and completes the OPEN exchange (hold time
    /// 0 unless given: no KEEPALIVEs needed while a test takes its time).
    pub fn inject(&self, hold: u16) -> Injector {
        let open = injector::open(INJ_AS, hold, INJ.parse().unwrap());
        Injector::establish_in(
            &self.inj_ns(),
            INJ.parse().unwrap(),
            self.node_addr(),
            &open,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    pub fn tor_session(&self) -> TorSession {
        let v = self
            .lab
            .vtysh_json("tor", &format!("show bgp neighbors {NODE} json"))
            .unwrap_or_default();
        let n = &v[NODE];
        TorSession {
            state: n["bgpState"].as_str().unwrap_or_default().to_owned(),
            established_epoch: n["bgpTimerUpEstablishedEpoch"].as_i64().unwrap_or(-1),
            established_count: n["connectionsEstablished"].as_i64().unwrap_or(-1),
        }
    }

    /// The tor's session is the one of the start, and the routes both ways are in place.
    pub fn assert_tor_untouched(&self, after: &str) {
        let now = self.tor_session();
        // FRR derives the epoch from the uptime and the clock at each query: it may move by
        // a second between two queries of the same session.
        let same = now.state == self.tor_before.state
            && now.established_count == self.tor_before.established_count
            && (now.established_epoch - self.tor_before.established_epoch).abs() <= 1;
        assert!(
            same,
            "the tor's session changed after {after}: {now:?}, was {:?}",
            self.tor_before
        );
        assert!(self.frr_has(OUR_ROUTE), "our route left FRR after {after}");
        assert!(
            self.loc_rib_has(TOR_ROUTE),
            "FRR's route left us after {after}"
        );
        let tor = self.harness.peer("tor").unwrap();
        assert_eq!(tor["state"], "established", "{tor}");
        assert_eq!(
            tor["flaps"], 0,
            "our tor session flapped after {after}: {tor}"
        );
    }

    pub fn frr_has(&self, prefix: &str) -> bool {
        !common::frr_paths(&self.lab, "tor", prefix).is_empty()
    }

    /// How many prefixes the tor has received from us.
    pub fn frr_received(&self) -> u64 {
        let v = self
            .lab
            .vtysh_json("tor", "show bgp ipv4 unicast summary json")
            .unwrap_or_default();
        v["peers"][NODE]["pfxRcd"].as_u64().unwrap_or(0)
    }

    pub fn loc_rib_has(&self, prefix: &str) -> bool {
        self.harness
            .loc_rib("ipv4-unicast")
            .map(|r| !common::find(&r, prefix).is_empty())
            .unwrap_or(false)
    }

    /// The injector's path for a prefix in our Adj-RIB-In.
    pub fn inj_path(&self, prefix: &str) -> Option<Value> {
        let rib = self.harness.adj_rib_in("inj", "ipv4-unicast").ok()?;
        common::find(&rib, prefix).first().map(|v| (*v).clone())
    }

    pub fn inj_state(&self) -> Value {
        self.harness.peer("inj").unwrap()
    }

    /// The harness's log lines from line `from` on (ANSI colours removed).
    pub fn log_lines(&self, from: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().skip(from).map(strip_ansi).collect()
    }

    /// Lines in the log so far.
    pub fn log_mark(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Warnings (and errors) logged since `mark`.
    pub fn warnings_since(&self, mark: usize) -> Vec<String> {
        self.log_lines(mark)
            .into_iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect()
    }

    pub fn harness_pid(&self) -> u32 {
        self.harness.pid
    }

    pub fn inj_addr(i: u8) -> IpAddr {
        format!("10.0.0.{i}").parse().unwrap()
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
