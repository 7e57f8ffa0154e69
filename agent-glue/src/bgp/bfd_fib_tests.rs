//! The reconcile's BFD and FIB share on the seed's manifests: BFD profiles named by peer
//! configs, the single-hop rule, the FIB annotations of the ClusterConfig, and the
//! `lbspeaker.io/MissingBFDProfile` condition.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use bgp::bfd::DampingConfig;
use k8s_openapi::jiff::Timestamp;

use super::cluster;
use super::facts::LocalFacts;
use super::fib::FibWant;
use super::reconcile::{Input, reconcile};
use super::*;
use crate::source::Snapshot;
use crate::source::memory::MemoryStore;

const BGP: &str = include_str!("../../../frr-lab/topologies/seed/bgp.yaml");
const NODES: &str = include_str!("../../../frr-lab/topologies/seed/cluster/nodes.yaml");

fn store(docs: &[&str]) -> MemoryStore {
    let s = MemoryStore::new();
    for d in docs {
        let problems = s.apply_yaml(d);
        assert!(problems.is_empty(), "{problems:?}");
    }
    s
}

/// The seed's peer config with `lbspeaker.io/bfd-profile: NAME`.
fn bgp_with_profile(name: &str) -> String {
    BGP.replace(
        "  name: cilium-peer\n",
        &format!("  name: cilium-peer\n  annotations: {{lbspeaker.io/bfd-profile: {name}}}\n"),
    )
}

/// The seed's ClusterConfig with annotations.
fn bgp_with_cluster_annotations(a: &[(&str, &str)]) -> String {
    let list: Vec<String> = a.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
    BGP.replace(
        "  name: cilium-bgp\n",
        &format!(
            "  name: cilium-bgp\n  annotations: {{{}}}\n",
            list.join(", ")
        ),
    )
}

/// Node N's interface toward the tor.
fn facts(address: &str) -> LocalFacts {
    LocalFacts {
        interfaces: [
            ("eth1".to_string(), vec![address.parse().unwrap()]),
            ("lo".to_string(), vec!["127.0.0.1/8".parse().unwrap()]),
        ]
        .into(),
        ..LocalFacts::default()
    }
}

fn run(snap: &Snapshot, node: &str, f: &LocalFacts) -> NodeDesired {
    reconcile(
        snap,
        Input {
            node,
            facts: f,
            secrets_namespace: DEFAULT_SECRETS_NAMESPACE,
        },
    )
}

fn inst(d: &NodeDesired) -> &DesiredInstance {
    &d.instances["instance-65001"]
}

#[test]
fn a_peer_config_naming_a_profile_gives_its_directly_connected_peers_single_hop_bfd() {
    let profile = "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\nspec:\n  transmitInterval: 100\n  receiveInterval: 200\n  detectMultiplier: 4\n  damping: {initialHoldSeconds: 5, maxHoldSeconds: 40}\n";
    let s = store(&[&bgp_with_profile("fast"), NODES, profile]);
    let d = run(&s.snapshot(), "node1", &facts("192.168.10.100/24"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let b = &inst(&d).bfd["tor-switch"];
    assert_eq!(b.instance, "instance-65001");
    assert_eq!(b.peer, "tor-switch");
    assert_eq!(b.remote.to_string(), "192.168.10.200");
    assert_eq!(b.remote_port, 3784);
    assert_eq!(b.interface, None, "only link-local remotes bind to a link");
    assert_eq!(b.profile.transmit_interval, Duration::from_millis(100));
    assert_eq!(b.profile.receive_interval, Duration::from_millis(200));
    assert_eq!(b.profile.detect_multiplier, 4);
    assert_eq!(
        b.profile.damping,
        DampingConfig {
            free_flaps: 1,
            initial_hold: Duration::from_secs(5),
            max_hold: Duration::from_secs(40),
            decay: Duration::from_secs(60),
        }
    );
    assert_eq!(
        inst(&d).peers["tor-switch"].ebgp_multihop,
        Some(2),
        "the peer config's TTL is kept for BGP; BFD is single hop because the path is"
    );
}

#[test]
fn an_empty_profile_means_300_ms_times_3_and_damping_off_when_asked() {
    let profile = "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: d}\nspec: {}\n---\napiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: nodamp}\nspec: {damping: {enabled: false}, passiveMode: true}\n";
    let s = store(&[&bgp_with_profile("d"), NODES, profile]);
    let d = run(&s.snapshot(), "node2", &facts("192.168.10.101/24"));
    let p = &inst(&d).bfd["tor-switch"].profile;
    assert_eq!(*p, bgp::bfd::BfdProfile::default());
    assert_eq!(p.detection_time(), Duration::from_millis(900));
    let s = store(&[&bgp_with_profile("nodamp"), NODES, profile]);
    let d = run(&s.snapshot(), "node2", &facts("192.168.10.101/24"));
    let p = &inst(&d).bfd["tor-switch"].profile;
    assert_eq!(p.damping, DampingConfig::off());
    assert!(p.passive);
}

#[test]
fn a_missing_profile_is_a_problem_and_the_peer_runs_without_bfd() {
    let s = store(&[&bgp_with_profile("fast"), NODES]);
    let d = run(&s.snapshot(), "node1", &facts("192.168.10.100/24"));
    assert!(inst(&d).bfd.is_empty());
    assert!(inst(&d).peers.contains_key("tor-switch"), "BGP runs on");
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: peer tor-switch: BFDProfile fast (annotation lbspeaker.io/bfd-profile of CiliumBGPPeerConfig cilium-peer) does not exist: running without BFD"
        ]
    );
}

#[test]
fn a_peer_behind_a_router_gets_no_bfd_because_multihop_bfd_is_not_implemented() {
    let profile =
        "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {}\n";
    let s = store(&[&bgp_with_profile("fast"), NODES, profile]);
    // node4 reaches 192.168.10.200 through the tor's 192.168.20.200.
    let d = run(&s.snapshot(), "node4", &facts("192.168.20.100/24"));
    assert!(inst(&d).bfd.is_empty());
    assert!(inst(&d).peers.contains_key("tor-switch"));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(
        d.errors[0].contains(
            "192.168.10.200 is not on a connected subnet of this node, and multihop BFD (RFC 5883) is not implemented"
        ),
        "{}",
        d.errors[0]
    );
}

#[test]
fn peers_whose_config_has_no_annotation_run_no_bfd_and_say_nothing() {
    let s = store(&[BGP, NODES]);
    let d = run(&s.snapshot(), "node1", &facts("192.168.10.100/24"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(inst(&d).bfd.is_empty());
    assert_eq!(inst(&d).fib, FibWant::Off, "FIB installation is opt-in");
}

#[test]
fn an_address_of_the_node_itself_or_a_host_route_is_not_a_connected_neighbour() {
    let f = LocalFacts {
        interfaces: [
            (
                "eth1".to_string(),
                vec!["192.168.10.100/24".parse().unwrap()],
            ),
            ("lo".to_string(), vec!["10.0.0.1/32".parse().unwrap()]),
        ]
        .into(),
        ..LocalFacts::default()
    };
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(
        bfd::connected_interface(&f, ip("192.168.10.200")),
        Some("eth1")
    );
    assert_eq!(bfd::connected_interface(&f, ip("192.168.10.100")), None);
    assert_eq!(bfd::connected_interface(&f, ip("10.0.0.1")), None);
    assert_eq!(bfd::connected_interface(&f, ip("192.168.20.200")), None);
}

#[test]
fn install_routes_on_the_cluster_config_gives_every_instance_a_filtered_fib() {
    let bgp = bgp_with_cluster_annotations(&[
        ("lbspeaker.io/install-routes", "true"),
        (
            "lbspeaker.io/install-routes-prefixes",
            "172.20.0.0/16 le 24, 0.0.0.0/0",
        ),
    ]);
    let s = store(&[&bgp, NODES]);
    let d = run(&s.snapshot(), "node1", &facts("192.168.10.100/24"));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let FibWant::Install(c) = &inst(&d).fib else {
        panic!("{:?}", inst(&d).fib)
    };
    assert_eq!(c.table, 254);
    assert_eq!(c.protocol, 212);
    assert_eq!(c.metric, 20);
    let rules: Vec<String> = c.accept.iter().map(ToString::to_string).collect();
    assert_eq!(rules, ["172.20.0.0/16 le 24", "0.0.0.0/0"]);
    assert!(c.accepts(&"172.20.3.0/24".parse().unwrap()));
    assert!(!c.accepts(&"10.10.1.0/24".parse().unwrap()));

    let bgp = bgp_with_cluster_annotations(&[
        ("lbspeaker.io/install-routes", "instance-65001"),
        ("lbspeaker.io/route-table", "100"),
    ]);
    let d = run(
        &store(&[&bgp, NODES]).snapshot(),
        "node1",
        &facts("192.168.10.100/24"),
    );
    let FibWant::Install(c) = &inst(&d).fib else {
        panic!()
    };
    assert_eq!(
        (c.table, c.accept.len()),
        (100, 0),
        "no filter: everything received"
    );
    for off in ["false", "", "FALSE"] {
        let bgp = bgp_with_cluster_annotations(&[("lbspeaker.io/install-routes", off)]);
        let d = run(
            &store(&[&bgp, NODES]).snapshot(),
            "node1",
            &facts("192.168.10.100/24"),
        );
        assert_eq!(inst(&d).fib, FibWant::Off, "{off:?}");
    }
}

#[test]
fn unreadable_fib_annotations_are_problems_that_leave_what_runs_alone() {
    for (annotations, why) in [
        (
            vec![("lbspeaker.io/install-routes", "instance-1")],
            "annotation lbspeaker.io/install-routes: \"instance-1\" is not an instance of this CiliumBGPClusterConfig",
        ),
        (
            vec![
                ("lbspeaker.io/install-routes", "true"),
                ("lbspeaker.io/install-routes-prefixes", "172.20.0.0/16 le 8"),
            ],
            "annotation lbspeaker.io/install-routes-prefixes: prefix rule \"172.20.0.0/16 le 8\": lengths must satisfy",
        ),
        (
            vec![
                ("lbspeaker.io/install-routes", "true"),
                ("lbspeaker.io/route-table", "255"),
            ],
            "annotation lbspeaker.io/route-table: table 255 cannot hold our routes",
        ),
        (
            vec![
                ("lbspeaker.io/install-routes", "true"),
                ("lbspeaker.io/route-table", "main"),
            ],
            "annotation lbspeaker.io/route-table: \"main\" is not a table number",
        ),
    ] {
        let bgp = bgp_with_cluster_annotations(&annotations);
        let d = run(
            &store(&[&bgp, NODES]).snapshot(),
            "node1",
            &facts("192.168.10.100/24"),
        );
        assert_eq!(inst(&d).fib, FibWant::Invalid, "{annotations:?}");
        assert!(inst(&d).peers.contains_key("tor-switch"), "BGP runs on");
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert!(
            d.errors[0].starts_with(&format!("instance instance-65001: {why}")),
            "{}",
            d.errors[0]
        );
    }
}

#[test]
fn two_instances_installing_into_one_table_leave_it_to_the_first() {
    let bgp = bgp_with_cluster_annotations(&[("lbspeaker.io/install-routes", "true")]).replace(
        "  bgpInstances:\n",
        "  bgpInstances:\n  - name: \"a-second\"\n    localASN: 65002\n    peers: []\n",
    );
    let d = run(
        &store(&[&bgp, NODES]).snapshot(),
        "node1",
        &facts("192.168.10.100/24"),
    );
    assert!(matches!(d.instances["a-second"].fib, FibWant::Install(_)));
    assert_eq!(inst(&d).fib, FibWant::Invalid);
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: lbspeaker.io/install-routes: table 254 already holds instance a-second's routes; choose another with lbspeaker.io/route-table"
        ]
    );
}

#[test]
fn the_peer_config_says_whether_its_bfd_profile_exists_and_only_when_it_names_one() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let condition = |snap: &Snapshot| -> Option<(String, String)> {
        let c = cluster::desired(snap, DEFAULT_SECRETS_NAMESPACE, now);
        let d = c
            .conditions
            .iter()
            .find(|d| d.key.name == "cilium-peer")
            .unwrap();
        crds::conditions::find(&d.conditions, crds::bfd::MISSING_BFD_PROFILE)
            .map(|x| (x.status.clone(), x.message.clone()))
    };
    let s = store(&[&bgp_with_profile("fast"), NODES]);
    assert_eq!(
        condition(&s.snapshot()),
        Some((
            "True".into(),
            "BFDProfile fast does not exist: the peers run without BFD".into()
        ))
    );
    s.apply_yaml(
        "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {}\n",
    );
    assert_eq!(
        condition(&s.snapshot()),
        Some(("False".into(), "BFDProfile fast found".into()))
    );
    assert_eq!(condition(&store(&[BGP, NODES]).snapshot()), None);
    // A condition left from when the annotation was there goes with it.
    let mut snap = (*s.snapshot()).clone();
    let written = cluster::desired(&snap, DEFAULT_SECRETS_NAMESPACE, now);
    let pc_conditions = written
        .conditions
        .iter()
        .find(|d| d.key.name == "cilium-peer")
        .unwrap()
        .conditions
        .clone();
    let plain = store(&[BGP, NODES]).snapshot();
    let mut pc =
        (*plain.bgp_peer_configs[&crate::source::ObjectKey::cluster("cilium-peer")]).clone();
    pc.status = Some(crds::bgp::CiliumBGPPeerConfigStatus {
        conditions: pc_conditions,
    });
    snap.bgp_peer_configs = BTreeMap::from([(
        crate::source::ObjectKey::cluster("cilium-peer"),
        std::sync::Arc::new(pc),
    )]);
    assert_eq!(condition(&snap), None);
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two peers on loopback (nobody answers: BGP stays Active), each with its own peer config
/// and profile; passive profiles, so that no BFD packet is ever sent.
fn two_peers(bgp_port: u16, a: Option<&str>, b: Option<&str>, fast_tx: u32) -> String {
    let ann = |p: Option<&str>| {
        p.map(|n| format!("\n  annotations: {{lbspeaker.io/bfd-profile: {n}}}"))
            .unwrap_or_default()
    };
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {{name: c}}\nspec:\n  bgpInstances:\n  - name: i\n    localASN: 65001\n    peers:\n    - {{name: a, peerASN: 65000, peerAddress: 127.0.0.2, peerConfigRef: {{name: pa}}}}\n    - {{name: b, peerASN: 65000, peerAddress: 127.0.0.3, peerConfigRef: {{name: pb}}}}\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata:\n  name: pa{}\nspec: {{transport: {{peerPort: {bgp_port}}}}}\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata:\n  name: pb{}\nspec: {{transport: {{peerPort: {bgp_port}}}}}\n---\n\
         apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {{name: slow}}\nspec: {{passiveMode: true, transmitInterval: 1000, receiveInterval: 1000}}\n---\n\
         apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {{name: fast}}\nspec: {{passiveMode: true, transmitInterval: {fast_tx}}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\nstatus: {{addresses: [{{type: InternalIP, address: 127.0.0.1}}]}}\n",
        ann(a),
        ann(b)
    )
}

async fn sessions(h: &super::agent::AgentHandle) -> Option<Vec<bgp::bfd::BfdSessionInfo>> {
    let m = h.bfd.lock().unwrap().clone()?;
    m.sessions().await.ok()
}

/// Peer name to (local discriminator, transmit interval ms, flaps).
type ByPeer = BTreeMap<String, (u32, u128, u32)>;

async fn by_peer(h: &super::agent::AgentHandle) -> ByPeer {
    sessions(h)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s.clients[0].peer.clone(),
                (
                    s.status.local_discriminator,
                    s.profile.transmit_interval.as_millis(),
                    s.status.flaps,
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_sessions_follow_the_manifests_and_a_change_touches_only_its_own_peer() {
    use crate::source::{Source, StatusSink};
    let bgp_port = free_udp_port();
    let store = MemoryStore::new();
    assert!(
        store
            .apply_yaml(&two_peers(bgp_port, Some("slow"), Some("fast"), 300))
            .is_empty()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sink: std::sync::Arc<dyn StatusSink> = std::sync::Arc::new(store.clone());
    let mut opts = super::agent::AgentOptions::new("node1");
    opts.bfd = bgp::bfd::BfdManagerConfig {
        port: free_udp_port(),
        listen_addresses: vec!["127.0.0.1".parse().unwrap()],
    };
    let (h, task) = super::agent::spawn(store.subscribe(), sink, opts, stop_rx);
    let until = async |what: &str, f: &dyn Fn(&ByPeer) -> bool| {
        let start = std::time::Instant::now();
        loop {
            let s = by_peer(&h).await;
            if f(&s) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let first = until("two sessions", &|s| s.len() == 2).await;
    assert_eq!((first["a"].1, first["b"].1), (1000, 300));
    assert!(
        h.view.borrow().errors.is_empty(),
        "{:?}",
        h.view.borrow().errors
    );

    // The fast profile changes: b's session takes it in place, a's is untouched.
    store.apply_yaml(&two_peers(bgp_port, Some("slow"), Some("fast"), 150));
    let s = until("b at 150 ms", &|s| s.get("b").is_some_and(|b| b.1 == 150)).await;
    assert_eq!(s["a"], first["a"], "a untouched");
    assert_eq!(
        s["b"].0, first["b"].0,
        "b kept its session (same discriminator)"
    );
    assert_eq!(s["b"].2, 0, "no flap");

    // a's peer config drops the annotation: its session goes, b's stays.
    store.apply_yaml(&two_peers(bgp_port, None, Some("fast"), 150));
    let s = until("only b", &|s| s.len() == 1).await;
    assert_eq!(s["b"].0, first["b"].0);

    // b's profile is deleted: a problem, and no BFD at all (the manager stops).
    store.delete(
        crate::source::Kind::BfdProfile,
        &crate::source::ObjectKey::cluster("fast"),
    );
    let start = std::time::Instant::now();
    while h.bfd.lock().unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the manager still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let errors = h.view.borrow().errors.clone();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("BFDProfile fast") && e.contains("does not exist")),
        "{errors:?}"
    );
    assert_eq!(
        h.speaker.peer_states("i").await.unwrap().len(),
        2,
        "both BGP peers run on"
    );
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}
