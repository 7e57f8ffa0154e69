//! Every manifest of the seed lab (`frr-lab/topologies/seed/`, the field's reference lab, and
//! its `cluster/` objects) parses into the crate's types and passes validation.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use crds::bgp::{
    AdvertisementType, Afi, CiliumBGPAdvertisement, CiliumBGPClusterConfig, CiliumBGPPeerConfig,
    Safi, ServiceAddressType,
};
use crds::l2::CiliumL2AnnouncementPolicy;
use crds::lbpool::{AllowFirstLastIps, CiliumLoadBalancerIPPool, v2alpha1};
use crds::manifest::{Document, split_documents};
use crds::validate::Validate;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frr-lab/topologies/seed")
}

#[derive(Default)]
struct Seen {
    advertisements: Vec<CiliumBGPAdvertisement>,
    peer_configs: Vec<CiliumBGPPeerConfig>,
    cluster_configs: Vec<CiliumBGPClusterConfig>,
    pools: Vec<CiliumLoadBalancerIPPool>,
    l2: Vec<CiliumL2AnnouncementPolicy>,
    services: Vec<Service>,
    nodes: Vec<Node>,
    slices: Vec<EndpointSlice>,
}

fn parse_valid<T>(file: &Path, doc: &Document<'_>) -> T
where
    T: serde::de::DeserializeOwned + Validate + kube::Resource<DynamicType = ()>,
{
    let obj: T = doc
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if let Err(e) = obj.validate() {
        panic!("{}: {e}", file.display());
    }
    obj
}

fn read_all() -> Seen {
    let mut seen = Seen::default();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [seed_dir(), seed_dir().join("cluster")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            // topology.yaml describes the lab for frr-lab; it is not a Kubernetes manifest.
            if p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("topology.yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 7, "seed manifests missing: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in split_documents(&text) {
            let tm = doc.type_meta().unwrap();
            match (tm.api_version.as_str(), tm.kind.as_str()) {
                ("cilium.io/v2", "CiliumBGPAdvertisement") => {
                    seen.advertisements.push(parse_valid(&file, &doc))
                }
                ("cilium.io/v2", "CiliumBGPPeerConfig") => {
                    seen.peer_configs.push(parse_valid(&file, &doc))
                }
                ("cilium.io/v2", "CiliumBGPClusterConfig") => {
                    seen.cluster_configs.push(parse_valid(&file, &doc))
                }
                ("cilium.io/v2", "CiliumLoadBalancerIPPool") => {
                    seen.pools.push(parse_valid(&file, &doc))
                }
                ("cilium.io/v2alpha1", "CiliumLoadBalancerIPPool") => {
                    let old: v2alpha1::CiliumLoadBalancerIPPool = doc.parse().unwrap();
                    seen.pools.push(old.into())
                }
                ("cilium.io/v2alpha1", "CiliumL2AnnouncementPolicy") => {
                    seen.l2.push(parse_valid(&file, &doc))
                }
                ("v1", "Service") => seen.services.push(doc.parse().unwrap()),
                ("v1", "Node") => seen.nodes.push(doc.parse().unwrap()),
                ("discovery.k8s.io/v1", "EndpointSlice") => seen.slices.push(doc.parse().unwrap()),
                other => panic!("{}: unexpected kind {other:?}", file.display()),
            }
        }
    }
    seen
}

#[test]
fn every_seed_manifest_parses_and_validates() {
    let s = read_all();
    assert_eq!(s.advertisements.len(), 2);
    assert_eq!(s.peer_configs.len(), 1);
    assert_eq!(s.cluster_configs.len(), 1);
    assert_eq!(s.pools.len(), 2);
    assert_eq!(s.l2.len(), 1);
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.nodes.len(), 4);
    assert_eq!(s.slices.len(), 1);
}

#[test]
fn the_seed_bgp_configuration_reads_as_written() {
    let s = read_all();
    let peer = &s.peer_configs[0];
    assert_eq!(peer.metadata.name.as_deref(), Some("cilium-peer"));
    let t = peer.spec.timers();
    assert_eq!(t.hold_time_seconds, Some(9));
    assert_eq!(t.keep_alive_time_seconds, Some(3));
    assert_eq!(t.connect_retry_time_seconds, Some(120), "defaulted");
    assert_eq!(peer.spec.ebgp_multihop(), 2);
    assert_eq!(peer.spec.peer_port(), 179);
    let gr = peer.spec.graceful_restart.as_ref().unwrap();
    assert!(gr.enabled);
    assert_eq!(gr.restart_time_seconds(), 15);
    let fam = peer.spec.families_or_default();
    assert_eq!(fam.len(), 1);
    assert_eq!((fam[0].afi, fam[0].safi), (Afi::Ipv4, Safi::Unicast));

    let cc = &s.cluster_configs[0];
    let inst = &cc.spec.bgp_instances[0];
    assert_eq!(inst.name, "instance-65001");
    assert_eq!(inst.local_asn, Some(65001));
    assert_eq!(inst.local_port, None);
    let p = &inst.peers[0];
    assert_eq!(p.peer_asn(), 65000);
    assert_eq!(p.peer_address.as_deref(), Some("192.168.10.200"));
    let r = p.peer_config_ref.as_ref().unwrap();
    assert_eq!(
        (r.group(), r.kind(), r.name.as_str()),
        ("cilium.io", "CiliumBGPPeerConfig", "cilium-peer")
    );

    let svc_adv = s
        .advertisements
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("bgp-advertisements-lb-exip-webpod"))
        .unwrap();
    let a = &svc_adv.spec.advertisements[0];
    assert_eq!(a.advertisement_type, AdvertisementType::Service);
    assert_eq!(
        a.service.as_ref().unwrap().addresses,
        [ServiceAddressType::LoadBalancerIP]
    );
    let sel = a
        .selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap();
    assert_eq!(sel[0].operator, "In");
}

#[test]
fn the_seed_pools_and_l2_policy_read_as_written() {
    let s = read_all();
    let pool = s
        .pools
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("cilium-pool"))
        .unwrap();
    assert_eq!(pool.spec.allow_first_last_ips, Some(AllowFirstLastIps::No));
    assert!(!pool.spec.allow_first_last_ips());
    assert_eq!(pool.spec.blocks[0].cidr.as_deref(), Some("172.16.1.0/24"));
    let l2pool = s
        .pools
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("cilium-lb-ippool"))
        .unwrap();
    assert!(l2pool.spec.allow_first_last_ips(), "default Yes");
    assert_eq!(
        l2pool.spec.blocks[0].start.as_deref(),
        Some("192.168.10.211")
    );
    assert_eq!(
        l2pool.spec.blocks[0].stop.as_deref(),
        Some("192.168.10.215")
    );
    let l2 = &s.l2[0].spec;
    assert!(l2.load_balancer_ips() && l2.external_ips());
    assert_eq!(l2.interfaces.as_deref(), Some(&["eth1".to_string()][..]));
    let svc = &s.services[0];
    assert_eq!(
        svc.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
}
