//! The translation on the seed's webpod and on the corner cases of every field, and the
//! incremental translator against the whole one.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ebpf::{Algorithm, BackendState, Dataplane, DataplaneConfig, Protocol, TrafficPolicy};

use super::incremental::Translator;
use super::translate::{TranslateOptions, translate};
use super::*;
use crate::bgp::facts::LocalFacts;
use crate::source::memory::MemoryStore;
use crate::source::{Kind, ObjectKey, Snapshot};

const NODES: &str = include_str!("../../../frr-lab/topologies/seed/cluster/nodes.yaml");
const WEBPOD: &str = include_str!("../../../frr-lab/topologies/seed/webpod.yaml");
const ENDPOINTS: &str =
    include_str!("../../../frr-lab/topologies/seed/cluster/webpod-endpoints.yaml");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// webpod with the address LB-IPAM gives it in the seed lab, and extra spec lines.
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
    store(&[NODES, &webpod_with(""), ENDPOINTS])
}

fn opts(node: &str) -> TranslateOptions {
    TranslateOptions::new(node)
}

fn only(snap: &Snapshot, node: &str) -> ebpf::Frontend {
    let t = translate(snap, &opts(node));
    assert_eq!(t.desired.frontends.len(), 1, "{t:?}");
    t.desired.frontends.into_values().next().unwrap()
}

#[test]
fn the_seeds_webpod_is_one_frontend_with_the_three_endpoints() {
    let f = only(&seed().snapshot(), "node2");
    assert_eq!(f.key.address, ip("172.16.1.1"));
    assert_eq!((f.key.port, f.key.protocol), (80, Protocol::Tcp));
    assert_eq!(f.service.as_deref(), Some("default/webpod"));
    assert_eq!(f.external_policy, TrafficPolicy::Cluster);
    assert_eq!(f.algorithm, Algorithm::Random);
    let b: Vec<(IpAddr, u16, bool, BackendState)> = f
        .backends
        .iter()
        .map(|b| (b.address, b.port, b.local, b.state))
        .collect();
    assert_eq!(
        b,
        [
            (ip("172.20.1.10"), 80, true, BackendState::Active),
            (ip("172.20.2.10"), 80, false, BackendState::Active),
            (ip("172.20.3.10"), 80, false, BackendState::Active),
        ]
    );
    // node1 has none of them locally.
    assert!(
        only(&seed().snapshot(), "node1")
            .backends
            .iter()
            .all(|b| !b.local)
    );
}

#[test]
fn a_service_without_an_address_yet_has_no_frontend() {
    let s = store(&[NODES, WEBPOD, ENDPOINTS]);
    let t = translate(&s.snapshot(), &opts("node1"));
    assert!(t.desired.frontends.is_empty());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

const TWO_PORTS: &str = "apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  type: LoadBalancer
  externalIPs: [192.0.2.7, 172.16.1.2]
  ports:
  - {name: dns-udp, protocol: UDP, port: 53, targetPort: dns}
  - {name: dns-tcp, protocol: TCP, port: 53, targetPort: 5353}
  - {name: sctp, protocol: SCTP, port: 9}
status: {loadBalancer: {ingress: [{ip: 172.16.1.2}, {ip: 172.16.1.3, ipMode: Proxy}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dns-a
  namespace: default
  labels: {kubernetes.io/service-name: dns}
addressType: IPv4
ports:
- {name: dns-udp, protocol: UDP, port: 1053}
- {name: dns-tcp, protocol: TCP, port: 5353}
endpoints:
- addresses: [10.1.0.5]
  nodeName: node1
- addresses: [10.1.0.6]
  conditions: {ready: false, serving: true, terminating: true}
  nodeName: node2
- addresses: [10.1.0.7]
  conditions: {ready: false}
  nodeName: node2
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dns-b
  namespace: default
  labels: {kubernetes.io/service-name: dns}
addressType: IPv4
ports:
- {name: dns-udp, protocol: UDP, port: 1053}
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
  nodeName: node1
- addresses: [10.1.0.8]
  nodeName: node3
";

#[test]
fn every_address_and_port_is_a_frontend_with_the_slice_port_of_its_name() {
    let s = store(&[NODES, TWO_PORTS]);
    let t = translate(&s.snapshot(), &opts("node1"));
    let keys: Vec<String> = t
        .desired
        .frontends
        .keys()
        .map(ToString::to_string)
        .collect();
    // The Proxy-mode ingress is left out; the external IP that is also the ingress is one
    // LoadBalancer frontend.
    assert_eq!(
        keys,
        [
            "172.16.1.2:53/TCP",
            "172.16.1.2:53/UDP",
            "192.0.2.7:53/TCP",
            "192.0.2.7:53/UDP"
        ]
    );
    let udp = &t.desired.frontends[&ebpf::FrontendKey {
        address: ip("172.16.1.2"),
        port: 53,
        protocol: Protocol::Udp,
    }];
    assert_eq!(udp.kind, ebpf::ServiceKind::LoadBalancer);
    let b: Vec<(IpAddr, u16, BackendState, bool)> = udp
        .backends
        .iter()
        .map(|b| (b.address, b.port, b.state, b.local))
        .collect();
    // 10.1.0.5 is in both slices once; the not-ready, not-serving endpoint is left out; the
    // serving terminating one is listed as terminating.
    assert_eq!(
        b,
        [
            (ip("10.1.0.5"), 1053, BackendState::Active, true),
            (ip("10.1.0.6"), 1053, BackendState::Terminating, false),
            (ip("10.1.0.8"), 1053, BackendState::Active, false),
        ]
    );
    let tcp = &t.desired.frontends[&ebpf::FrontendKey {
        address: ip("192.0.2.7"),
        port: 53,
        protocol: Protocol::Tcp,
    }];
    assert_eq!(tcp.kind, ebpf::ServiceKind::ExternalIp);
    // dns-b has no dns-tcp port: only dns-a's endpoints.
    let addrs: Vec<IpAddr> = tcp.backends.iter().map(|b| b.address).collect();
    assert_eq!(addrs, [ip("10.1.0.5"), ip("10.1.0.6")]);
    assert_eq!(
        t.problems,
        ["Service default/dns: port 9 is SCTP; the dataplane forwards TCP and UDP only"]
    );
}

#[test]
fn local_policy_and_only_terminating_endpoints_fall_back_to_the_serving_ones() {
    let svc = webpod_with("  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local");
    let eps = ENDPOINTS.replace(
        "- addresses: [172.20.1.10]\n  conditions: {ready: true, serving: true, terminating: false}",
        "- addresses: [172.20.1.10]\n  conditions: {ready: false, serving: true, terminating: true}",
    );
    let s = store(&[NODES, &svc, &eps]);
    let f = only(&s.snapshot(), "node2");
    assert_eq!(f.external_policy, TrafficPolicy::Local);
    assert_eq!(f.internal_policy, TrafficPolicy::Local);
    // node2's only local endpoint is terminating: with Local it is the only eligible one, so
    // it takes new flows rather than none.
    let local: Vec<_> = f.backends.iter().filter(|b| b.local).collect();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].state, BackendState::Active);
    // With Cluster, ready endpoints exist elsewhere: it stays terminating.
    let svc = webpod_with("");
    let s = store(&[NODES, &svc, &eps]);
    let f = only(&s.snapshot(), "node2");
    let b = f.backends.iter().find(|b| b.local).unwrap();
    assert_eq!(b.state, BackendState::Terminating);
}

#[test]
fn the_algorithm_annotation_is_honoured_and_a_bad_value_reported() {
    let with = |v: &str| {
        WEBPOD.replace(
            "  labels:\n    app: webpod",
            &format!(
                "  labels:\n    app: webpod\n  annotations:\n    service.cilium.io/lb-algorithm: {v}"
            ),
        ) + "status:\n  loadBalancer:\n    ingress: [{ip: 172.16.1.1}]\n"
    };
    let s = store(&[NODES, &with("maglev"), ENDPOINTS]);
    assert_eq!(only(&s.snapshot(), "node1").algorithm, Algorithm::Maglev);
    let mut o = opts("node1");
    o.algorithm_annotation = false;
    let t = translate(&s.snapshot(), &o);
    assert_eq!(
        t.desired.frontends.values().next().unwrap().algorithm,
        Algorithm::Random
    );
    let s = store(&[NODES, &with("round-robin"), ENDPOINTS]);
    let t = translate(&s.snapshot(), &opts("node1"));
    assert_eq!(
        t.problems,
        [
            "Service default/webpod: service.cilium.io/lb-algorithm \"round-robin\" is not random or maglev; using random"
        ]
    );
}

#[test]
fn services_of_another_proxy_are_left_alone() {
    let svc = webpod_with("").replace(
        "    app: webpod\nspec",
        "    app: webpod\n    service.kubernetes.io/service-proxy-name: other\nspec",
    );
    let s = store(&[NODES, &svc, ENDPOINTS]);
    assert!(
        translate(&s.snapshot(), &opts("node1"))
            .desired
            .frontends
            .is_empty()
    );
}

#[test]
fn the_older_service_keeps_a_contested_frontend_and_the_other_is_reported() {
    let s = store(&[NODES, &webpod_with(""), ENDPOINTS]);
    let twin = webpod_with("").replace(
        "name: webpod\n  namespace",
        "name: webpod-twin\n  namespace",
    );
    s.apply_yaml(&twin);
    let t = translate(&s.snapshot(), &opts("node1"));
    assert_eq!(t.desired.frontends.len(), 1);
    assert_eq!(
        t.desired
            .frontends
            .values()
            .next()
            .unwrap()
            .service
            .as_deref(),
        Some("default/webpod")
    );
    assert_eq!(
        t.problems,
        [
            "Service default/webpod-twin: frontend 172.16.1.1:80/TCP is already served by Service default/webpod; not programmed for default/webpod-twin"
        ]
    );
}

#[test]
fn snat_addresses_and_uplinks_come_from_the_nodes_internal_ip() {
    let s = seed().snapshot();
    let node = s.nodes.get(&ObjectKey::cluster("node4")).cloned();
    let o = DataplaneOptions::default();
    assert_eq!(
        snat_addresses(&o, node.as_deref()),
        (Some("192.168.20.100".parse().unwrap()), None)
    );
    let mut facts = LocalFacts::default();
    facts
        .interfaces
        .insert("lo".into(), vec!["127.0.0.1/8".parse().unwrap()]);
    facts
        .interfaces
        .insert("eth1".into(), vec!["192.168.20.100/24".parse().unwrap()]);
    assert_eq!(uplinks(&o, node.as_deref(), &facts), ["eth1"]);
    let o = DataplaneOptions {
        interfaces: vec!["bond0".into()],
        snat_v4: Some("10.9.9.9".parse().unwrap()),
        ..DataplaneOptions::default()
    };
    assert_eq!(uplinks(&o, node.as_deref(), &facts), ["bond0"]);
    assert_eq!(
        snat_addresses(&o, node.as_deref()).0,
        Some("10.9.9.9".parse().unwrap())
    );
}

#[test]
fn one_changed_endpoint_slice_gives_one_upsert_and_nothing_else() {
    let s = seed();
    let other = webpod_with("")
        .replace("name: webpod\n  namespace", "name: other\n  namespace")
        .replace("172.16.1.1", "172.16.1.9");
    s.apply_yaml(&other);
    let mut t = Translator::new(opts("node2"));
    let first = t.update(&s.snapshot());
    assert_eq!((first.upsert.len(), first.remove.len()), (2, 0));
    assert_eq!(first.services_translated, 2);
    // Nothing changed: nothing to do.
    let again = t.update(&s.snapshot());
    assert!(again.is_empty());
    assert_eq!(again.services_translated, 0);
    // node4's endpoint goes: webpod's frontend only.
    let eps = ENDPOINTS.replace(
        "- addresses: [172.20.3.10]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node4\n  targetRef: {kind: Pod, namespace: default, name: webpod-3}",
        "",
    );
    s.apply_yaml(&eps);
    let d = t.update(&s.snapshot());
    assert_eq!(d.services_translated, 1, "only webpod is translated again");
    assert_eq!(d.upsert.len(), 1);
    assert_eq!(d.upsert[0].key.address, ip("172.16.1.1"));
    assert_eq!(d.upsert[0].backends.len(), 2);
    assert!(d.remove.is_empty());
    // The service goes: its frontend is removed.
    s.delete(Kind::Service, &ObjectKey::namespaced("default", "webpod"));
    let d = t.update(&s.snapshot());
    assert!(d.upsert.is_empty());
    assert_eq!(d.remove.len(), 1);
    assert_eq!(
        t.desired(),
        &translate(&s.snapshot(), &opts("node2")).desired
    );
}

#[test]
fn the_incremental_translation_equals_the_whole_one_after_every_edit() {
    // A fixed pseudo-random walk over edits of three services, their slices and a twin that
    // contests an address (deterministic: the same walk every run).
    let s = store(&[NODES]);
    let mut t = Translator::new(opts("node2"));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let names = ["a", "b", "c"];
    let mut dp = Dataplane::without_kernel(DataplaneConfig::default());
    let (mut changes, mut conflicts, mut removals) = (0, 0, 0);
    for step in 0..300 {
        let r = next();
        let name = names[(r % 3) as usize];
        let addr = 1 + (r >> 8) % 3;
        let port = 80 + (r >> 16) % 2;
        match (r >> 24) % 5 {
            0 => s.delete(Kind::Service, &ObjectKey::namespaced("default", name)),
            1 => s.delete(Kind::EndpointSlice, &ObjectKey::namespaced("default", name)),
            2 | 3 => {
                let policy = if (r >> 32) % 2 == 0 {
                    "Cluster"
                } else {
                    "Local"
                };
                s.apply_yaml(&format!(
                    "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy}\n  ports: [{{port: {port}, targetPort: 8080}}]\nstatus: {{loadBalancer: {{ingress: [{{ip: 172.16.1.{addr}}}]}}}}\n"
                ));
            }
            _ => {
                let ready = (r >> 40) % 3 != 0;
                let node = 1 + (r >> 44) % 3;
                s.apply_yaml(&format!(
                    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints:\n- {{addresses: [10.0.{node}.{addr}], conditions: {{ready: {ready}}}, nodeName: node{node}}}\n- {{addresses: [10.0.9.9], nodeName: node3}}\n"
                ));
            }
        }
        let snap = s.snapshot();
        let before = t.desired().clone();
        let d = t.update(&snap);
        let whole = translate(&snap, &opts("node2"));
        changes += usize::from(!d.is_empty());
        removals += usize::from(!d.remove.is_empty());
        conflicts += usize::from(whole.problems.iter().any(|p| p.contains("already served")));
        assert_eq!(t.desired(), &whole.desired, "step {step}");
        assert_eq!(t.problems(), whole.problems, "step {step}");
        // The delta is exactly the difference.
        let mut applied = before;
        for k in &d.remove {
            applied.frontends.remove(k);
        }
        for f in &d.upsert {
            applied.insert(f.clone());
        }
        assert_eq!(&applied, t.desired(), "step {step}");
        // And the maps programmed from deltas mean the same as a full sync would.
        for k in &d.remove {
            dp.remove(k).unwrap();
        }
        for f in &d.upsert {
            dp.upsert(f).unwrap();
        }
        let mut fresh = Dataplane::without_kernel(DataplaneConfig::default());
        fresh.sync(t.desired()).unwrap();
        assert_eq!(
            view_without_ids(&dp.list().unwrap()),
            view_without_ids(&fresh.list().unwrap()),
            "step {step}"
        );
    }
    // The walk went through what it is meant to test.
    assert!(
        changes > 100 && removals > 20 && conflicts > 20,
        "{changes} {removals} {conflicts}"
    );
}

/// A list view with the ids the maps happened to allocate left out (they depend on history).
fn view_without_ids(v: &ebpf::ListView) -> Vec<String> {
    v.services
        .iter()
        .map(|s| {
            let mut b: Vec<String> = s
                .backends
                .iter()
                .map(|b| format!("{:?}:{} {}", b.address, b.port, b.state))
                .collect();
            b.sort();
            format!(
                "{}:{}/{} {} {:?} {}+{} {:?}",
                s.address, s.port, s.protocol, s.scope, s.flags, s.count, s.qcount, b
            )
        })
        .collect()
}

/// Waits until the reconciler's view satisfies `f`.
async fn view_until(
    h: &DataplaneHandle,
    what: &str,
    f: impl Fn(&DataplaneView) -> bool,
) -> DataplaneView {
    let mut rx = h.view.clone();
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|v| f(v))).await {
        Ok(Ok(v)) => v.clone(),
        _ => panic!("timed out waiting for {what}: {:?}", h.view.borrow()),
    }
}

#[tokio::test]
async fn the_reconciler_programs_the_seed_and_applies_a_moved_endpoint_as_two_map_writes() {
    use crate::source::Source as _;
    let s = seed();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = DataplaneOptions {
        mode: Mode::Off,
        bpffs_root: std::env::temp_dir().join("lbspeaker-unit-no-such-root"),
        ..DataplaneOptions::default()
    };
    let (h, task) = start(opts, "node2".into(), s.subscribe(), stop_rx)
        .await
        .unwrap();
    let v = view_until(&h, "the first sync", |v| v.ready).await;
    assert_eq!(v.frontends, 1);
    assert!(!v.kernel);
    let first = v.last_apply.clone().unwrap();
    assert!(first.full);
    // Three backends, three slots, the frontend's slot 0 and its reverse-NAT entry.
    assert_eq!(first.updates, 8, "{first:?}");
    let list = h.list().await.unwrap();
    assert_eq!(list.list.services[0].backends.len(), 3);
    assert!(list.note.unwrap().contains("--dataplane off"));

    // node4's endpoint moves to another address: one backend written, one slot re-pointed.
    s.apply_yaml(&ENDPOINTS.replace("172.20.3.10", "172.20.3.11"));
    let v = view_until(&h, "the change", |v| v.applies >= 2).await;
    let a = v.last_apply.unwrap();
    assert!(!a.full, "{a:?}");
    assert_eq!((a.frontends, a.removed, a.services_translated), (1, 0, 1));
    assert_eq!(a.updates, 2, "the new backend and its slot: {a:?}");
    assert_eq!(a.deletes, 0, "the old backend drains until GC: {a:?}");

    // The service goes: its frontend is removed.
    s.delete(Kind::Service, &ObjectKey::namespaced("default", "webpod"));
    let v = view_until(&h, "the removal", |v| v.frontends == 0).await;
    assert_eq!(v.last_apply.unwrap().removed, 1);
    assert!(h.list().await.unwrap().list.services.is_empty());
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}
