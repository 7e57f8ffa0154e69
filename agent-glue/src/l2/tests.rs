//! The policy evaluation on the seed's l2.yaml and on every field's corners, and the operator
//! role's conditions.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use crds::conditions as cond;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{self, PolicyConditions};
use super::policy::{Evaluation, Interface, evaluate};
use crate::source::memory::MemoryStore;
use crate::source::{Kind, ObjectKey, Snapshot};

const L2: &str = include_str!("../../../frr-lab/topologies/seed/l2.yaml");

const NODES: &str = "
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {kubernetes.io/hostname: node1, rack: a}}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {kubernetes.io/hostname: node2, rack: a}}
---
apiVersion: v1
kind: Node
metadata: {name: node3, labels: {kubernetes.io/hostname: node3, rack: b}}
";

const INGRESS: &str = "
apiVersion: v1
kind: Service
metadata: {name: cilium-ingress, namespace: kube-system}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
status: {loadBalancer: {ingress: [{ip: 192.168.10.211}]}}
";

/// A LoadBalancer service with these ingress addresses and extra spec lines.
fn service(ns: &str, name: &str, ips: &[&str], extra_spec: &str) -> String {
    let ingress: Vec<String> = ips.iter().map(|a| format!("{{ip: {a}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\nspec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n{extra_spec}status: {{loadBalancer: {{ingress: [{}]}}}}\n",
        ingress.join(", ")
    )
}

fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

fn store(docs: &[&str]) -> MemoryStore {
    let s = MemoryStore::new();
    for d in docs {
        let problems = s.apply_yaml(d);
        assert!(problems.is_empty(), "{problems:?}");
    }
    s
}

fn eth(names: &[&str]) -> Vec<Interface> {
    let mut v: Vec<Interface> = names
        .iter()
        .map(|n| Interface {
            name: (*n).to_owned(),
            loopback: false,
            ethernet: true,
        })
        .collect();
    v.push(Interface {
        name: "lo".into(),
        loopback: true,
        ethernet: false,
    });
    v
}

fn eval(snap: &Snapshot, node: &str) -> Evaluation {
    evaluate(snap, node, &eth(&["eth1"]))
}

/// (address, services, interfaces, eligible) rows.
fn rows(e: &Evaluation) -> Vec<(String, Vec<String>, Vec<String>, bool)> {
    e.announcements
        .iter()
        .map(|a| {
            (
                a.address.to_string(),
                a.services.iter().map(ToString::to_string).collect(),
                a.interfaces.iter().cloned().collect(),
                a.eligible,
            )
        })
        .collect()
}

fn eligible(e: &Evaluation) -> BTreeSet<IpAddr> {
    e.announcements
        .iter()
        .filter(|a| a.eligible)
        .map(|a| a.address)
        .collect()
}

fn addresses(e: &Evaluation) -> Vec<String> {
    e.announcements
        .iter()
        .map(|a| a.address.to_string())
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[test]
fn the_seed_policy_announces_the_ingress_address_on_eth1_of_every_node() {
    let st = store(&[L2, NODES, INGRESS]);
    let snap = st.snapshot();
    for n in ["node1", "node2", "node3"] {
        let e = eval(&snap, n);
        assert_eq!(
            rows(&e),
            vec![(
                "192.168.10.211".into(),
                s(&["kube-system/cilium-ingress"]),
                s(&["eth1"]),
                true
            )],
            "{n}"
        );
        assert!(e.problems.is_empty(), "{:?}", e.problems);
    }
}

#[test]
fn without_a_policy_nothing_is_announced() {
    let st = store(&[NODES, INGRESS]);
    let e = eval(&st.snapshot(), "node1");
    assert!(e.announcements.is_empty());
    assert!(e.problems.is_empty());
}

#[test]
fn both_switches_default_to_false_and_each_selects_its_own_addresses() {
    let svc = service(
        "default",
        "web",
        &["192.168.10.212"],
        "  externalIPs: [192.168.10.250]\n",
    );
    let none = policy("p", "  interfaces: [eth1]\n");
    let st = store(&[NODES, &svc, &none]);
    assert!(eval(&st.snapshot(), "node1").announcements.is_empty());
    let ext = policy("p", "  externalIPs: true\n");
    let st = store(&[NODES, &svc, &ext]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.250"])
    );
    let lb = policy("p", "  loadBalancerIPs: true\n");
    let st = store(&[NODES, &svc, &lb]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.212"])
    );
}

#[test]
fn a_service_that_is_not_a_load_balancer_keeps_only_its_external_ips() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  type: ClusterIP\n  externalIPs: [192.168.10.250]\nstatus: {loadBalancer: {ingress: [{ip: 192.168.10.212}]}}\n";
    let st = store(&[NODES, svc, L2]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.250"])
    );
}

#[test]
fn only_services_without_a_class_or_of_the_l2_announcer_class_are_announced() {
    let classes = [
        ("none", ""),
        ("l2", "  loadBalancerClass: io.cilium/l2-announcer\n"),
        ("bgp", "  loadBalancerClass: io.cilium/bgp-control-plane\n"),
        ("other", "  loadBalancerClass: example.com/lb\n"),
    ];
    let svcs: Vec<String> = classes
        .iter()
        .enumerate()
        .map(|(i, (n, extra))| {
            service(
                "default",
                n,
                &[&format!("192.168.10.{}", 212 + i)],
                &format!("{extra}  externalIPs: [10.0.0.{i}]\n"),
            )
        })
        .collect();
    let mut docs: Vec<&str> = vec![NODES, L2];
    docs.extend(svcs.iter().map(String::as_str));
    let st = store(&docs);
    let e = eval(&st.snapshot(), "node1");
    assert_eq!(
        addresses(&e),
        s(&["10.0.0.0", "10.0.0.1", "192.168.10.212", "192.168.10.213"])
    );
}

#[test]
fn the_service_selector_sees_labels_and_the_pseudo_labels() {
    let a = service("default", "a", &["192.168.10.212"], "");
    let b = service("team", "b", &["192.168.10.213"], "");
    let by_label = policy(
        "p",
        "  loadBalancerIPs: true\n  serviceSelector: {matchLabels: {app: a}}\n",
    );
    let st = store(&[NODES, &a, &b, &by_label]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.212"])
    );
    let by_ns = policy(
        "p",
        "  loadBalancerIPs: true\n  serviceSelector: {matchLabels: {io.kubernetes.service.namespace: team}}\n",
    );
    let st = store(&[NODES, &a, &b, &by_ns]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.213"])
    );
    let by_name = policy(
        "p",
        "  loadBalancerIPs: true\n  serviceSelector: {matchExpressions: [{key: io.kubernetes.service.name, operator: NotIn, values: [a]}]}\n",
    );
    let st = store(&[NODES, &a, &b, &by_name]);
    assert_eq!(
        addresses(&eval(&st.snapshot(), "node1")),
        s(&["192.168.10.213"])
    );
}

#[test]
fn a_node_outside_the_node_selector_gets_the_same_addresses_but_may_not_answer() {
    let p = policy(
        "p",
        "  loadBalancerIPs: true\n  nodeSelector: {matchLabels: {rack: a}}\n",
    );
    let st = store(&[NODES, INGRESS, &p]);
    let snap = st.snapshot();
    let (n1, n3) = (eval(&snap, "node1"), eval(&snap, "node3"));
    assert_eq!(
        rows(&n3),
        vec![(
            "192.168.10.211".into(),
            s(&["kube-system/cilium-ingress"]),
            vec![],
            false
        )]
    );
    assert_eq!(eligible(&n1).len(), 1);
    // The same addresses and services on every node: the same lease names.
    let key = |e: &Evaluation| -> Vec<(IpAddr, Vec<String>)> {
        e.announcements
            .iter()
            .map(|a| {
                (
                    a.address,
                    a.services.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    };
    assert_eq!(key(&n1), key(&n3));
}

#[test]
fn a_node_without_a_node_object_answers_for_nothing_and_says_why() {
    let st = store(&[L2, INGRESS]);
    let e = eval(&st.snapshot(), "node1");
    assert_eq!(addresses(&e), s(&["192.168.10.211"]));
    assert!(eligible(&e).is_empty());
    assert!(e.problems[0].contains("no Node node1"), "{:?}", e.problems);
}

#[test]
fn interface_expressions_match_anywhere_in_the_name_and_never_select_loopback() {
    let ifaces = eth(&["eth1", "eth10", "veth1abc", "bond0"]);
    let mut no_mac = ifaces.clone();
    no_mac.push(Interface {
        name: "wg0".into(),
        loopback: false,
        ethernet: false,
    });
    let cases: [(&str, &[&str]); 5] = [
        ("", &["bond0", "eth1", "eth10", "veth1abc"]),
        (
            "  interfaces: []\n",
            &["bond0", "eth1", "eth10", "veth1abc"],
        ),
        ("  interfaces: [eth1]\n", &["eth1", "eth10", "veth1abc"]),
        ("  interfaces: ['^eth1$', '^bond']\n", &["bond0", "eth1"]),
        (
            "  interfaces: ['.*']\n",
            &["bond0", "eth1", "eth10", "veth1abc"],
        ),
    ];
    for (spec, want) in cases {
        let p = policy("p", &format!("  loadBalancerIPs: true\n{spec}"));
        let st = store(&[NODES, INGRESS, &p]);
        let e = evaluate(&st.snapshot(), "node1", &no_mac);
        let got: Vec<String> = e.announcements[0].interfaces.iter().cloned().collect();
        assert_eq!(got, s(want), "{spec}");
    }
    // A node whose interfaces the policy does not match may not answer.
    let p = policy("p", "  loadBalancerIPs: true\n  interfaces: ['^eth9$']\n");
    let st = store(&[NODES, INGRESS, &p]);
    assert!(eligible(&evaluate(&st.snapshot(), "node1", &ifaces)).is_empty());
}

#[test]
fn several_policies_selecting_one_service_merge_nodes_and_interfaces() {
    let on_eth1 = policy(
        "a",
        "  loadBalancerIPs: true\n  interfaces: ['^eth1$']\n  nodeSelector: {matchLabels: {rack: a}}\n",
    );
    let on_eth2 = policy(
        "b",
        "  loadBalancerIPs: true\n  interfaces: ['^eth2$']\n  nodeSelector: {matchLabels: {kubernetes.io/hostname: node1}}\n",
    );
    let ext_only = policy(
        "c",
        "  externalIPs: true\n  nodeSelector: {matchLabels: {rack: b}}\n",
    );
    let svc = service(
        "default",
        "web",
        &["192.168.10.212"],
        "  externalIPs: [192.168.10.250]\n",
    );
    let st = store(&[NODES, &svc, &on_eth1, &on_eth2, &ext_only]);
    let snap = st.snapshot();
    let ifaces = eth(&["eth1", "eth2"]);
    let r = |n| rows(&evaluate(&snap, n, &ifaces));
    let web = s(&["default/web"]);
    assert_eq!(
        r("node1"),
        vec![
            (
                "192.168.10.212".into(),
                web.clone(),
                s(&["eth1", "eth2"]),
                true
            ),
            ("192.168.10.250".into(), web.clone(), vec![], false),
        ]
    );
    assert_eq!(
        r("node2"),
        vec![
            ("192.168.10.212".into(), web.clone(), s(&["eth1"]), true),
            ("192.168.10.250".into(), web.clone(), vec![], false),
        ]
    );
    assert_eq!(
        r("node3"),
        vec![
            ("192.168.10.212".into(), web.clone(), vec![], false),
            ("192.168.10.250".into(), web, s(&["eth1", "eth2"]), true),
        ]
    );
}

#[test]
fn services_sharing_an_address_are_one_announcement_with_every_service() {
    let a = service("default", "web-a", &["192.168.10.213"], "");
    let b = service("default", "web-b", &["192.168.10.213"], "");
    let c = service("default", "web-c", &["192.168.10.214", "fd00:10::214"], "");
    let st = store(&[NODES, L2, &a, &b, &c]);
    assert_eq!(
        rows(&eval(&st.snapshot(), "node2")),
        vec![
            (
                "192.168.10.213".into(),
                s(&["default/web-a", "default/web-b"]),
                s(&["eth1"]),
                true
            ),
            (
                "192.168.10.214".into(),
                s(&["default/web-c"]),
                s(&["eth1"]),
                true
            ),
            (
                "fd00:10::214".into(),
                s(&["default/web-c"]),
                s(&["eth1"]),
                true
            ),
        ]
    );
}

const LOCAL_ENDPOINTS: &str = "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- addresses: [172.20.1.10]
  nodeName: node2
  conditions: {ready: true}
- addresses: [172.20.2.10]
  nodeName: node3
  conditions: {ready: false}
";

#[test]
fn a_local_traffic_policy_service_is_answered_only_where_a_ready_endpoint_is() {
    let svc = service(
        "default",
        "web",
        &["192.168.10.212"],
        "  externalTrafficPolicy: Local\n",
    );
    let st = store(&[NODES, L2, &svc, LOCAL_ENDPOINTS]);
    let snap = st.snapshot();
    let here: Vec<bool> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| !eligible(&eval(&snap, n)).is_empty())
        .collect();
    assert_eq!(here, [false, true, false]);
    // Without any EndpointSlice nobody may answer, but the address is still known.
    let st = store(&[NODES, L2, &svc]);
    let e = eval(&st.snapshot(), "node2");
    assert_eq!(addresses(&e), s(&["192.168.10.212"]));
    assert!(eligible(&e).is_empty());
    // A Cluster service is answered by any selected node.
    let svc = service("default", "web", &["192.168.10.212"], "");
    let st = store(&[NODES, L2, &svc, LOCAL_ENDPOINTS]);
    assert_eq!(eligible(&eval(&st.snapshot(), "node1")).len(), 1);
}

#[test]
fn a_policy_that_cannot_be_evaluated_is_out_of_force_and_the_others_still_apply() {
    let bad = policy(
        "bad",
        "  loadBalancerIPs: true\n  interfaces: ['eth[1']\n  nodeSelector: {matchExpressions: [{key: rack, operator: Near}]}\n",
    );
    let good = policy(
        "good",
        "  loadBalancerIPs: true\n  serviceSelector: {matchLabels: {app: web}}\n",
    );
    let a = service("default", "web", &["192.168.10.212"], "");
    let b = service("default", "other", &["192.168.10.213"], "");
    let st = store(&[NODES, &bad, &good, &a, &b]);
    let e = eval(&st.snapshot(), "node1");
    assert_eq!(addresses(&e), s(&["192.168.10.212"]));
    assert_eq!(e.problems.len(), 2, "{:?}", e.problems);
    assert!(
        e.problems[0].starts_with(
            "CiliumL2AnnouncementPolicy bad: spec.nodeSelector.matchExpressions[0].operator"
        ),
        "{:?}",
        e.problems
    );
    assert!(
        e.problems[1].contains("spec.interfaces[0] (\"eth[1\") is not a valid regular expression: unclosed character class"),
        "{:?}",
        e.problems
    );
}

// The operator role's conditions.

fn policy_conditions(st: &MemoryStore, name: &str) -> Vec<(String, String, String, String)> {
    st.snapshot()
        .l2_announcement_policies
        .get(&ObjectKey::cluster(name))
        .and_then(|p| p.status.clone())
        .map(|s| {
            s.conditions
                .into_iter()
                .map(|c| (c.type_, c.status, c.reason, c.message))
                .collect()
        })
        .unwrap_or_default()
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

#[tokio::test]
async fn a_policy_without_errors_gets_no_status_and_a_bad_part_gets_its_condition() {
    let st = store(&[NODES, L2]);
    let mut ctl = PolicyConditions::new();
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.written, 0);
    assert!(policy_conditions(&st, "policy1").is_empty());

    st.apply_yaml(&policy(
        "policy1",
        "  loadBalancerIPs: true\n  interfaces: ['eth[1']\n  serviceSelector: {matchLabels: {'a b': x}}\n",
    ));
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.written, 1);
    let c = policy_conditions(&st, "policy1");
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(
        (c[0].0.as_str(), c[0].1.as_str(), c[0].2.as_str()),
        (cond::BAD_SERVICE_SELECTOR, "True", conditions::REASON)
    );
    assert!(
        c[0].3
            .starts_with("spec.serviceSelector.matchLabels[\"a b\"]"),
        "{c:?}"
    );
    assert_eq!(
        (c[1].0.as_str(), c[1].1.as_str()),
        (cond::BAD_INTERFACE_REGEX, "True")
    );
    assert!(c[1].3.contains("unclosed character class"), "{c:?}");

    // Unchanged: nothing is written again, however often the round runs.
    let writes = st.writes();
    for _ in 0..3 {
        let r = ctl.round(&st.snapshot(), &st, now()).await;
        assert_eq!(r.written, 0);
    }
    assert_eq!(st.writes(), writes);

    // Fixed: the conditions stay, False with an empty message, as Cilium leaves them.
    st.apply_yaml(L2);
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.written, 1);
    assert_eq!(
        policy_conditions(&st, "policy1"),
        vec![
            (
                cond::BAD_SERVICE_SELECTOR.into(),
                "False".into(),
                "error".into(),
                String::new()
            ),
            (
                cond::BAD_INTERFACE_REGEX.into(),
                "False".into(),
                "error".into(),
                String::new()
            ),
        ]
    );
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.written, 0);

    // A bad node selector joins the list; the others keep their False.
    st.apply_yaml(&policy(
        "policy1",
        "  loadBalancerIPs: true\n  nodeSelector: {matchExpressions: [{key: rack, operator: In}]}\n",
    ));
    ctl.round(&st.snapshot(), &st, now()).await;
    let c = policy_conditions(&st, "policy1");
    assert_eq!(c.len(), 3, "{c:?}");
    assert_eq!(
        (c[2].0.as_str(), c[2].1.as_str()),
        (cond::BAD_NODE_SELECTOR, "True")
    );
    assert!(
        c[2].3.contains("must not be empty for operator In"),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_failed_status_write_is_retried_and_a_deleted_policys_status_goes() {
    let bad = policy("p", "  interfaces: ['(']\n");
    let st = store(&[NODES, &bad]);
    let mut ctl = PolicyConditions::new();
    st.fail_writes(Some("disk full"));
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.failed.len(), 1);
    assert!(policy_conditions(&st, "p").is_empty());
    st.fail_writes(None);
    let r = ctl.round(&st.snapshot(), &st, now()).await;
    assert_eq!(r.written, 1);
    assert_eq!(policy_conditions(&st, "p").len(), 1);
    st.delete(Kind::L2AnnouncementPolicy, &ObjectKey::cluster("p"));
    let d = conditions::desired(&st.snapshot(), now());
    assert!(d.is_empty());
}
