//! The BGP reconcile on the seed lab's manifests and on the corner cases of every field.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use bgp::wire::{Community, Family, LargeCommunity};
use k8s_openapi::jiff::Timestamp;

use super::cluster;
use super::facts::{DefaultGateway, LocalFacts};
use super::reconcile::{Input, reconcile};
use super::*;
use crate::source::Snapshot;
use crate::source::memory::MemoryStore;

const BGP: &str = include_str!("../../../frr-lab/topologies/seed/bgp.yaml");
const POOL: &str = include_str!("../../../frr-lab/topologies/seed/lb-pool.yaml");
const WEBPOD: &str = include_str!("../../../frr-lab/topologies/seed/webpod.yaml");
const LB_ADVERT: &str = include_str!("../../../frr-lab/topologies/seed/lb-advertisement.yaml");
const NODES: &str = include_str!("../../../frr-lab/topologies/seed/cluster/nodes.yaml");
const ENDPOINTS: &str =
    include_str!("../../../frr-lab/topologies/seed/cluster/webpod-endpoints.yaml");

/// webpod with the address LB-IPAM gives it in the seed lab.
fn webpod_with(extra_spec: &str) -> String {
    let spec = WEBPOD.replace(
        "  type: LoadBalancer",
        &format!("  type: LoadBalancer\n{extra_spec}"),
    );
    format!("{spec}status:\n  loadBalancer:\n    ingress: [{{ip: 172.16.1.1}}]\n")
}

fn store(docs: &[&str]) -> MemoryStore {
    let s = MemoryStore::new();
    for d in docs {
        let problems = s.apply_yaml(d);
        assert!(problems.is_empty(), "{problems:?}");
    }
    s
}

fn seed() -> MemoryStore {
    store(&[BGP, NODES, POOL, &webpod_with(""), LB_ADVERT, ENDPOINTS])
}

fn run(snap: &Snapshot, node: &str) -> NodeDesired {
    run_with(snap, node, &LocalFacts::default())
}

fn run_with(snap: &Snapshot, node: &str, facts: &LocalFacts) -> NodeDesired {
    reconcile(
        snap,
        Input {
            node,
            facts,
            secrets_namespace: DEFAULT_SECRETS_NAMESPACE,
        },
    )
}

fn prefixes(d: &NodeDesired, peer: &str) -> Vec<String> {
    d.instances["instance-65001"].peers[peer]
        .export_routes
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.prefix.to_string())
        .collect()
}

fn all_prefixes(d: &NodeDesired) -> Vec<String> {
    d.instances["instance-65001"]
        .routes
        .iter()
        .map(|r| r.prefix.to_string())
        .collect()
}

#[test]
fn the_seed_gives_node1_its_instance_its_peer_and_its_pod_cidr() {
    let d = run(&store(&[BGP, NODES]).snapshot(), "node1");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.cluster_config.as_deref(), Some("cilium-bgp"));
    let inst = &d.instances["instance-65001"];
    assert_eq!(inst.config.local_as.get(), 65001);
    assert_eq!(inst.config.router_id.to_string(), "192.168.10.100");
    assert_eq!(inst.config.listen_port, None, "no localPort: dial only");
    let p = &inst.peers["tor-switch"];
    assert_eq!(p.address, "192.168.10.200".parse::<IpAddr>().unwrap());
    assert_eq!(p.peer_as, 65000);
    assert_eq!((p.hold_time.seconds(), p.keepalive), (9, Some(3)));
    assert_eq!(p.connect_retry, 120);
    assert_eq!(p.ebgp_multihop, Some(2));
    assert_eq!(p.graceful_restart.map(|g| g.restart_time), Some(15));
    assert_eq!(p.families, vec![Family::IPV4_UNICAST]);
    assert!(!p.export_learned, "a node is not a transit router");
    assert_eq!(prefixes(&d, "tor-switch"), ["172.20.0.0/24"]);
    assert!(d.graceful_restart());
    let spec = d.spec.unwrap();
    assert_eq!(
        spec.bgp_instances[0].router_id.as_deref(),
        Some("192.168.10.100")
    );
    assert_eq!(
        spec.bgp_instances[0].peers[0].peer_address.as_deref(),
        Some("192.168.10.200")
    );
    let d4 = run(&store(&[BGP, NODES]).snapshot(), "node4");
    assert_eq!(all_prefixes(&d4), ["172.20.3.0/24"]);
}

#[test]
fn a_cluster_policy_service_is_advertised_from_every_selected_node() {
    let snap = seed().snapshot();
    for node in ["node1", "node2", "node3", "node4"] {
        let d = run(&snap, node);
        assert!(
            prefixes(&d, "tor-switch").contains(&"172.16.1.1/32".to_string()),
            "{node}: {:?}",
            prefixes(&d, "tor-switch")
        );
    }
    let d = run(&snap, "node1");
    let policies: Vec<&str> = d.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        policies,
        [
            "tor-switch-ipv4-bgp-advertisements-PodCIDR",
            "tor-switch-ipv4-bgp-advertisements-lb-exip-webpod-Service"
        ]
    );
}

#[test]
fn a_local_policy_service_comes_only_from_nodes_with_a_ready_endpoint() {
    let s = store(&[
        BGP,
        NODES,
        POOL,
        &webpod_with("  externalTrafficPolicy: Local"),
        LB_ADVERT,
        ENDPOINTS,
    ]);
    let has = |snap: &Snapshot, n: &str| {
        prefixes(&run(snap, n), "tor-switch").contains(&"172.16.1.1/32".to_string())
    };
    let snap = s.snapshot();
    assert!(!has(&snap, "node1"), "node1 has no webpod backend");
    for n in ["node2", "node3", "node4"] {
        assert!(has(&snap, n), "{n}");
    }
    // node4's backend stops being ready, node3's disappears: both withdraw.
    let eps = ENDPOINTS
        .replace(
            "- addresses: [172.20.2.10]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node3\n  targetRef: {kind: Pod, namespace: default, name: webpod-2}\n",
            "",
        )
        .replace(
            "conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node4",
            "conditions: {ready: false, serving: true, terminating: true}\n  nodeName: node4",
        );
    assert_ne!(eps, ENDPOINTS);
    s.apply_yaml(&eps);
    let snap = s.snapshot();
    assert!(has(&snap, "node2"));
    assert!(!has(&snap, "node3"));
    assert!(!has(&snap, "node4"));
    // No endpoint at all: nobody.
    s.delete(
        crate::source::Kind::EndpointSlice,
        &crate::source::ObjectKey::namespaced("default", "webpod-lab"),
    );
    let snap = s.snapshot();
    assert!(
        ["node1", "node2", "node3", "node4"]
            .iter()
            .all(|n| !has(&snap, n))
    );
}

#[test]
fn an_endpoint_without_a_ready_condition_counts_as_ready() {
    let eps = ENDPOINTS.replace(
        "  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node2",
        "  nodeName: node2",
    );
    let s = store(&[
        BGP,
        NODES,
        POOL,
        &webpod_with("  externalTrafficPolicy: Local"),
        LB_ADVERT,
        &eps,
    ]);
    assert!(prefixes(&run(&s.snapshot(), "node2"), "tor-switch").contains(&"172.16.1.1/32".into()));
}

#[test]
fn load_balancer_ips_of_other_classes_are_not_advertised() {
    for (class, advertised) in [
        ("io.cilium/bgp-control-plane", true),
        ("io.cilium/l2-announcer", false),
        ("metallb.io/metallb", false),
    ] {
        let s = store(&[
            BGP,
            NODES,
            &webpod_with(&format!("  loadBalancerClass: {class}")),
            LB_ADVERT,
        ]);
        let got = all_prefixes(&run(&s.snapshot(), "node1"));
        assert_eq!(
            got.contains(&"172.16.1.1/32".to_string()),
            advertised,
            "{class}"
        );
    }
}

const SVC_ADVERT: &str = "apiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata:\n  name: svc\n  labels: {advertise: bgp}\nspec:\n  advertisements:\n";

#[test]
fn aggregation_applies_except_for_local_traffic_policies() {
    let advert = format!(
        "{SVC_ADVERT}  - advertisementType: Service\n    service: {{addresses: [LoadBalancerIP], aggregationLengthIPv4: 24}}\n    selector: {{matchLabels: {{app: webpod}}}}\n"
    );
    let s = store(&[BGP, NODES, &webpod_with(""), &advert]);
    assert!(all_prefixes(&run(&s.snapshot(), "node1")).contains(&"172.16.1.0/24".into()));
    let s = store(&[
        BGP,
        NODES,
        &webpod_with("  externalTrafficPolicy: Local"),
        &advert,
        ENDPOINTS,
    ]);
    let got = all_prefixes(&run(&s.snapshot(), "node2"));
    assert!(got.contains(&"172.16.1.1/32".into()), "{got:?}");
    assert!(!got.contains(&"172.16.1.0/24".into()));
}

#[test]
fn cluster_and_external_ips_follow_their_own_traffic_policies() {
    let advert = format!(
        "{SVC_ADVERT}  - advertisementType: Service\n    service: {{addresses: [ClusterIP, ExternalIP]}}\n    selector: {{matchExpressions: [{{key: io.kubernetes.service.name, operator: In, values: [webpod]}}]}}\n"
    );
    let svc = webpod_with(
        "  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10]\n  externalIPs: [198.51.100.7]\n  internalTrafficPolicy: Local",
    );
    let s = store(&[BGP, NODES, &svc, &advert, ENDPOINTS]);
    let n1 = all_prefixes(&run(&s.snapshot(), "node1"));
    assert!(n1.contains(&"198.51.100.7/32".into()), "{n1:?}");
    assert!(
        !n1.contains(&"10.96.0.10/32".into()),
        "internalTrafficPolicy Local: node1 has no endpoint"
    );
    let n2 = all_prefixes(&run(&s.snapshot(), "node2"));
    assert!(n2.contains(&"10.96.0.10/32".into()), "{n2:?}");
    assert!(
        !n2.contains(&"172.16.1.1/32".into()),
        "LoadBalancerIP not asked for"
    );
}

#[test]
fn overlapping_advertisements_union_communities_and_keep_the_highest_local_preference() {
    let a = format!(
        "{SVC_ADVERT}  - advertisementType: Service\n    service: {{addresses: [LoadBalancerIP]}}\n    selector: {{matchLabels: {{app: webpod}}}}\n    attributes:\n      communities: {{standard: [\"65001:10\"], wellKnown: [no-export]}}\n      localPreference: 150\n"
    );
    let b = a
        .replace("name: svc", "name: svc2")
        .replace(
            "standard: [\"65001:10\"], wellKnown: [no-export]",
            "standard: [\"65001:20\"], large: [\"65001:1:2\"]",
        )
        .replace("localPreference: 150", "localPreference: 300");
    let s = store(&[BGP, NODES, &webpod_with(""), &a, &b]);
    let d = run(&s.snapshot(), "node1");
    let r = d.instances["instance-65001"].peers["tor-switch"]
        .export_routes
        .as_ref()
        .unwrap()
        .iter()
        .find(|r| r.prefix.to_string() == "172.16.1.1/32")
        .unwrap()
        .clone();
    assert_eq!(
        r.attributes.communities,
        vec![
            Community::new(65001, 10),
            Community::new(65001, 20),
            Community::NO_EXPORT
        ]
    );
    assert_eq!(
        r.attributes.large_communities,
        vec![LargeCommunity::new(65001, 1, 2)]
    );
    assert_eq!(r.attributes.local_pref, Some(300));
    let pol = d
        .policies
        .iter()
        .find(|p| p.name == "tor-switch-ipv4-svc-Service")
        .unwrap();
    assert_eq!(pol.match_peers, ["192.168.10.200/32"]);
    assert_eq!(pol.match_prefixes, ["172.16.1.1/32"]);
    assert_eq!(
        pol.path_actions,
        [
            "AddCommunities: [65001:10 no-export]",
            "SetLocalPreference: 150"
        ]
    );
}

const OVERRIDE: &str = "apiVersion: cilium.io/v2\nkind: CiliumBGPNodeConfigOverride\nmetadata: {name: node1}\nspec:\n  bgpInstances:\n  - name: instance-65001\n    routerID: 10.255.0.1\n    localASN: 65011\n    localPort: 1790\n    peers: [{name: tor-switch, localAddress: 192.168.10.100}]\n";

#[test]
fn an_override_sets_router_id_asn_port_and_local_address_for_its_node_only() {
    let s = store(&[BGP, NODES, OVERRIDE]);
    let d = run(&s.snapshot(), "node1");
    let i = &d.instances["instance-65001"];
    assert_eq!(i.config.router_id.to_string(), "10.255.0.1");
    assert_eq!(i.config.local_as.get(), 65011);
    assert_eq!(i.config.listen_port, Some(1790));
    assert_eq!(
        i.peers["tor-switch"].local_address,
        Some("192.168.10.100".parse().unwrap())
    );
    let d2 = run(&s.snapshot(), "node2");
    assert_eq!(d2.instances["instance-65001"].config.local_as.get(), 65001);
}

#[test]
fn a_node_without_an_ipv4_internal_ip_needs_an_override_for_its_router_id() {
    let nodes = NODES.replace("address: 192.168.10.101", "address: fd00::101");
    let d = run(&store(&[BGP, &nodes]).snapshot(), "node2");
    assert!(d.instances.is_empty());
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: no router ID: Node node2 has no IPv4 InternalIP; set routerID in a CiliumBGPNodeConfigOverride named node2"
        ]
    );
}

#[test]
fn a_missing_peer_config_or_secret_keeps_the_peer_out_and_says_why() {
    let bgp = BGP.replace("name: \"cilium-peer\"", "name: \"no-such-peer\"");
    let d = run(&store(&[&bgp, NODES]).snapshot(), "node1");
    assert!(d.instances["instance-65001"].peers.is_empty());
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: peer tor-switch: CiliumBGPPeerConfig no-such-peer does not exist"
        ]
    );
    let bgp = BGP.replace(
        "  ebgpMultihop: 2",
        "  ebgpMultihop: 2\n  authSecretRef: bgp-auth",
    );
    let s = store(&[&bgp, NODES]);
    let d = run(&s.snapshot(), "node1");
    assert!(d.instances["instance-65001"].peers.is_empty());
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: peer tor-switch: authSecretRef: Secret kube-system/bgp-auth does not exist"
        ]
    );
    s.apply_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth, namespace: kube-system}\nstringData: {password: s3cret}\n",
    );
    let d = run(&s.snapshot(), "node1");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(
        d.instances["instance-65001"].peers["tor-switch"]
            .password
            .as_deref(),
        Some("s3cret")
    );
}

#[test]
fn default_gateway_discovery_peers_with_the_gateway_of_the_default_route() {
    let bgp = BGP.replace(
        "      peerAddress: 192.168.10.200\n",
        "      autoDiscovery: {mode: DefaultGateway, defaultGateway: {addressFamily: ipv4}}\n",
    );
    let s = store(&[&bgp, NODES]);
    let d = run(&s.snapshot(), "node1");
    assert!(d.instances["instance-65001"].peers.is_empty());
    assert_eq!(
        d.errors,
        [
            "instance instance-65001: peer tor-switch: autoDiscovery DefaultGateway: this node has no IPv4 default route"
        ]
    );
    let facts = LocalFacts {
        default_v4: vec![DefaultGateway {
            gateway: "192.168.10.1".parse().unwrap(),
            interface: "eth1".into(),
        }],
        ..LocalFacts::default()
    };
    let d = run_with(&s.snapshot(), "node1", &facts);
    assert_eq!(
        d.instances["instance-65001"].peers["tor-switch"].address,
        "192.168.10.1".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn of_two_cluster_configs_selecting_a_node_the_older_applies_and_the_newer_conflicts() {
    let newer = "apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {name: zz-newer}\nspec:\n  nodeSelector: {matchLabels: {kubernetes.io/hostname: node2}}\n  bgpInstances:\n  - name: other\n    localASN: 65099\n    peers: [{name: p, peerAddress: 192.168.10.250, peerConfigRef: {name: cilium-peer}}]\n";
    let s = store(&[BGP, NODES, newer]);
    let snap = s.snapshot();
    assert_eq!(
        run(&snap, "node2").cluster_config.as_deref(),
        Some("cilium-bgp")
    );
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let c = cluster::desired(&snap, DEFAULT_SECRETS_NAMESPACE, now);
    let of = |name: &str, t: &str| {
        let d = c.conditions.iter().find(|d| d.key.name == name).unwrap();
        let x = crds::conditions::find(&d.conditions, t).unwrap();
        (x.status.clone(), x.message.clone())
    };
    assert_eq!(
        of("zz-newer", crds::conditions::CONFLICTING_CLUSTER_CONFIG),
        (
            "True".into(),
            "node node2 is taken by CiliumBGPClusterConfig cilium-bgp".into()
        )
    );
    assert_eq!(
        of("cilium-bgp", crds::conditions::CONFLICTING_CLUSTER_CONFIG).0,
        "False"
    );
    assert_eq!(
        of("zz-newer", crds::conditions::NO_MATCHING_NODE).0,
        "False"
    );
    assert_eq!(
        of("cilium-bgp", crds::conditions::MISSING_PEER_CONFIGS).0,
        "False"
    );
}

#[test]
fn cluster_conditions_name_missing_nodes_peer_configs_and_secrets() {
    let bgp = BGP
        .replace("\"enable-bgp\": \"true\"", "\"enable-bgp\": \"nope\"")
        .replace("name: \"cilium-peer\"\n", "name: \"gone\"\n")
        .replace(
            "  ebgpMultihop: 2",
            "  ebgpMultihop: 2\n  authSecretRef: bgp-auth",
        );
    let s = store(&[&bgp, NODES]);
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let c = cluster::desired(&s.snapshot(), DEFAULT_SECRETS_NAMESPACE, now);
    let get = |name: &str, t: &str| {
        let d = c.conditions.iter().find(|d| d.key.name == name).unwrap();
        let x = crds::conditions::find(&d.conditions, t).unwrap();
        (x.status.clone(), x.message.clone())
    };
    assert_eq!(
        get("cilium-bgp", crds::conditions::NO_MATCHING_NODE),
        ("True".into(), "nodeSelector selects no node".into())
    );
    assert_eq!(
        get("cilium-bgp", crds::conditions::MISSING_PEER_CONFIGS),
        ("True".into(), "missing CiliumBGPPeerConfig: gone".into())
    );
    assert_eq!(
        get("cilium-peer", crds::conditions::MISSING_AUTH_SECRET),
        (
            "True".into(),
            "Secret kube-system/bgp-auth does not exist".into()
        )
    );
}

#[tokio::test]
async fn the_cluster_controller_writes_once_and_then_nothing_while_nothing_changes() {
    let s = store(&[BGP, NODES]);
    let mut ctl = cluster::ClusterController::new();
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let r = ctl
        .round(&s.snapshot(), &s, DEFAULT_SECRETS_NAMESPACE, now)
        .await;
    assert_eq!(r.written, 2, "the cluster config and the peer config");
    let later = Timestamp::from_second(1_900_000_000).unwrap();
    let r = ctl
        .round(&s.snapshot(), &s, DEFAULT_SECRETS_NAMESPACE, later)
        .await;
    assert_eq!(r.written, 0);
}

#[test]
fn two_peers_of_one_instance_are_sent_what_their_own_families_select() {
    let bgp = format!(
        "{}\n    - name: \"tor2\"\n      peerASN: 65100\n      peerAddress: 192.168.10.201\n      peerConfigRef:\n        name: \"services-only\"\n",
        BGP.trim_end()
    );
    let peer2 = "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: services-only}\nspec:\n  families:\n  - afi: ipv4\n    safi: unicast\n    advertisements: {matchLabels: {advertise: services}}\n";
    let advert = format!(
        "{}  - advertisementType: Service\n    service: {{addresses: [LoadBalancerIP]}}\n    selector: {{matchLabels: {{app: webpod}}}}\n    attributes: {{communities: {{standard: [\"65001:99\"]}}}}\n",
        SVC_ADVERT.replace("advertise: bgp", "advertise: services")
    );
    let s = store(&[&bgp, NODES, &webpod_with(""), peer2, &advert]);
    let d = run(&s.snapshot(), "node1");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(prefixes(&d, "tor-switch"), ["172.20.0.0/24"]);
    assert_eq!(prefixes(&d, "tor2"), ["172.16.1.1/32"]);
    assert_eq!(all_prefixes(&d), ["172.16.1.1/32", "172.20.0.0/24"]);
    let tor2 = &d.instances["instance-65001"].peers["tor2"];
    assert_eq!(
        tor2.export_routes.as_ref().unwrap()[0]
            .attributes
            .communities,
        vec![Community::new(65001, 99)]
    );
    assert_eq!(tor2.families, vec![Family::IPV4_UNICAST]);
    assert_eq!(tor2.ebgp_multihop, None, "default TTL 1");
    assert_eq!(tor2.graceful_restart, None);
}

#[test]
fn interface_advertisements_skip_link_local_and_loopback_addresses() {
    let advert =
        format!("{SVC_ADVERT}  - advertisementType: Interface\n    interface: {{name: lo}}\n");
    let facts = LocalFacts {
        interfaces: [(
            "lo".to_string(),
            vec![
                "127.0.0.1/8".parse().unwrap(),
                "10.0.0.7/32".parse().unwrap(),
                "169.254.0.1/16".parse().unwrap(),
            ],
        )]
        .into(),
        ..LocalFacts::default()
    };
    let d = run_with(&store(&[BGP, NODES, &advert]).snapshot(), "node1", &facts);
    assert_eq!(all_prefixes(&d), ["10.0.0.7/32", "172.20.0.0/24"]);
}

#[test]
fn a_pod_ip_pool_advertises_the_node_ranges_inside_it() {
    let advert = format!(
        "{SVC_ADVERT}  - advertisementType: CiliumPodIPPool\n    selector: {{matchLabels: {{io.cilium.podippool.name: blue}}}}\n"
    );
    let pool = "apiVersion: cilium.io/v2alpha1\nkind: CiliumPodIPPool\nmetadata: {name: blue}\nspec:\n  ipv4: {cidrs: [172.20.0.0/23], maskSize: 24}\n";
    let s = store(&[BGP, NODES, &advert, pool]);
    let n1 = run(&s.snapshot(), "node1");
    assert_eq!(all_prefixes(&n1), ["172.20.0.0/24"]);
    let n3 = run(&s.snapshot(), "node3");
    assert_eq!(
        all_prefixes(&n3),
        ["172.20.2.0/24"],
        "node3's range is outside the pool: only its PodCIDR advertisement"
    );
}

#[test]
fn ebgp_multihop_is_ignored_for_an_internal_peer() {
    let bgp = BGP.replace("peerASN: 65000", "peerASN: 65001");
    let d = run(&store(&[&bgp, NODES]).snapshot(), "node1");
    assert_eq!(
        d.instances["instance-65001"].peers["tor-switch"].ebgp_multihop,
        None
    );
}

#[test]
fn an_unknown_node_or_an_unselected_one_runs_nothing() {
    let s = store(&[BGP, NODES]);
    let d = run(&s.snapshot(), "node9");
    assert!(d.instances.is_empty() && d.spec.is_none());
    assert_eq!(d.errors.len(), 1);
    let nodes = NODES.replace(
        "enable-bgp: \"true\"\n    kubernetes.io/hostname: node2",
        "kubernetes.io/hostname: node2",
    );
    let d = run(&store(&[BGP, &nodes]).snapshot(), "node2");
    assert!(d.instances.is_empty() && d.spec.is_none() && d.errors.is_empty());
}

#[test]
fn reconciling_twice_gives_the_same_answer() {
    let snap = seed().snapshot();
    assert_eq!(run(&snap, "node3"), run(&snap, "node3"));
}

#[test]
fn each_family_carries_only_its_own_prefixes_and_omitted_families_mean_both() {
    let bgp = BGP.replace(
        "  families:\n    - afi: ipv4\n      safi: unicast\n      advertisements:\n        matchLabels:\n          advertise: \"bgp\"\n",
        "  families:\n    - afi: ipv6\n      safi: unicast\n      advertisements:\n        matchLabels:\n          advertise: \"bgp\"\n",
    );
    assert_ne!(bgp, BGP);
    let nodes = NODES.replace(
        "  podCIDRs: [172.20.0.0/24]",
        "  podCIDRs: [172.20.0.0/24, \"fd00:20::/64\"]",
    );
    let d = run(&store(&[&bgp, &nodes]).snapshot(), "node1");
    assert_eq!(prefixes(&d, "tor-switch"), ["fd00:20::/64"]);
    assert_eq!(
        d.instances["instance-65001"].peers["tor-switch"].families,
        vec![Family::IPV6_UNICAST]
    );
    // No families at all: both unicast families, and no advertisement selected.
    let bare = BGP.replace(
        "  families:\n    - afi: ipv4\n      safi: unicast\n      advertisements:\n        matchLabels:\n          advertise: \"bgp\"\n",
        "",
    );
    let d = run(&store(&[&bare, &nodes]).snapshot(), "node1");
    let p = &d.instances["instance-65001"].peers["tor-switch"];
    assert_eq!(p.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(p.export_routes.as_ref().unwrap().is_empty());
}
