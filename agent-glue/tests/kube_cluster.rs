//! The seed scenario through the Kubernetes API: the seed lab's manifests applied to the
//! in-memory API server, four `lbspeaker agent`s and two `lbspeaker operator`s as in-process
//! tasks (each with a client of its own), a loopback speaker standing in for the tor. Then
//! edits through the API, and the RBAC of `deploy/rbac/` checked against every request the
//! agents and operators made.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::collections::BTreeSet;
use std::time::Duration;

use agent_glue::api::StatusView;
use agent_glue::api::client::Client as ApiClient;
use crds::bgp::{CiliumBGPClusterConfig, CiliumBGPNodeConfig, CiliumBGPPeerConfig};
use crds::conditions;
use crds::lbpool::CiliumLoadBalancerIPPool;
use k8s_openapi::api::core::v1::Service;
use kube_support::l2::{self, Beliefs};
use kube_support::{
    Cluster, NS, eventually, fast_timers, free_port, rbac, seed_manifests, tor, tor_rib,
    tor_sessions,
};
use tests::apiserver::Verb;

const WAIT: Duration = Duration::from_secs(20);

fn condition<'a>(
    c: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<(&'a str, &'a str)> {
    conditions::find(c, t).map(|c| (c.status.as_str(), c.message.as_str()))
}

fn managers(obj: &serde_json::Value) -> BTreeSet<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().to_string(),
                m["subresource"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seed_scenario_runs_through_the_api_with_four_agents_and_two_operators() {
    let port = free_port();
    let tor = tor(port, 4).await;
    let mut c = Cluster::new();
    c.apply(&seed_manifests(port)).await;
    c.start_operator("op-a", fast_timers());
    c.start_operator("op-b", fast_timers());
    for n in 1..=4 {
        c.start_agent(&format!("node{n}"), true);
    }
    let beliefs = Beliefs::default();
    let lease = "cilium-l2announce-default-webpod";
    let electors: Vec<l2::Node> = (1..=4)
        .map(|n| {
            l2::start(
                &c.server,
                NS,
                &format!("node{n}"),
                &[lease],
                fast_timers(),
                beliefs.clone(),
            )
        })
        .collect();

    // LB-IPAM: the seed's address, its condition, the pool's counts.
    eventually("webpod's address", WAIT, async || {
        (c.ingress("default", "webpod") == ["172.16.1.1"]).then_some(())
    })
    .await;
    let svc: Service = c.server.get("default", "webpod").unwrap();
    let st = svc.status.unwrap();
    assert_eq!(
        condition(
            st.conditions.as_deref().unwrap(),
            conditions::IPAM_REQUEST_SATISFIED
        ),
        Some(("True", "172.16.1.1 from cilium-pool"))
    );
    let pool: CiliumLoadBalancerIPPool = eventually("the pool's counts", WAIT, async || {
        let p: CiliumLoadBalancerIPPool = c.server.get("", "cilium-pool")?;
        (condition(crds::lbpool::conditions(&p), conditions::IPS_USED) == Some(("Unknown", "1")))
            .then_some(p)
    })
    .await;
    let pc = crds::lbpool::conditions(&pool);
    assert_eq!(
        condition(pc, conditions::IPS_AVAILABLE),
        Some(("Unknown", "253"))
    );

    // One operator leads.
    let leader = eventually("an operator leader", WAIT, async || {
        c.holder("lbspeaker-operator")
    })
    .await;
    assert!(leader == "op-a" || leader == "op-b", "{leader}");

    // The tor: four sessions, each node's PodCIDR from it, the service from every node.
    let rib = eventually("the seed's routes on the tor", WAIT, async || {
        let rib = tor_rib(&tor).await;
        (rib.get("172.16.1.1/32").map(Vec::len) == Some(4) && rib.len() == 5).then_some(rib)
    })
    .await;
    for n in 0..4 {
        assert_eq!(rib[&format!("172.20.{n}.0/24")], [format!("node{}", n + 1)]);
    }
    assert!(
        tor_sessions(&tor)
            .await
            .iter()
            .all(|(_, s, _)| s == "established")
    );

    // Each node's CiliumBGPNodeConfig: the spec by the operator (owned by the Node), the
    // status by the node's agent, each under its own field manager.
    for n in 1..=4 {
        let node = format!("node{n}");
        let nc: CiliumBGPNodeConfig =
            eventually("a node config with an established peer", WAIT, async || {
                let nc: CiliumBGPNodeConfig = c.server.get("", &node)?;
                let p = nc
                    .status
                    .as_ref()?
                    .bgp_instances
                    .first()?
                    .peers
                    .first()?
                    .clone();
                (p.peering_state.as_deref() == Some("established")
                    && p.route_count.first()?.advertised == Some(2))
                .then_some(nc)
            })
            .await;
        let inst = &nc.spec.bgp_instances[0];
        assert_eq!(
            (inst.name.as_str(), inst.local_asn),
            ("instance-65001", Some(65001))
        );
        let router_id = [
            "192.168.10.100",
            "192.168.10.101",
            "192.168.10.102",
            "192.168.20.100",
        ];
        assert_eq!(
            inst.router_id.as_deref(),
            Some(router_id[n - 1]),
            "the InternalIP"
        );
        assert_eq!(inst.peers[0].peer_address.as_deref(), Some("127.0.0.1"));
        let status = nc.status.as_ref().unwrap();
        assert_eq!(
            condition(&status.conditions, conditions::BGP_RECONCILE_ERROR).map(|c| c.0),
            Some("False")
        );
        let p = &status.bgp_instances[0].peers[0];
        assert_eq!(p.peer_asn, Some(65000));
        assert!(p.established_time.is_some());
        let raw = c
            .server
            .object("cilium.io/v2", "CiliumBGPNodeConfig", "", &node)
            .unwrap();
        assert_eq!(raw["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(
            managers(&raw),
            [
                ("lbspeaker-agent".into(), "status".into()),
                ("lbspeaker-operator".into(), String::new())
            ]
            .into()
        );
    }

    // The operator's BGP conditions.
    let cc: CiliumBGPClusterConfig = c.server.get("", "cilium-bgp").unwrap();
    let cc = cc.status.unwrap().conditions;
    assert_eq!(
        condition(&cc, conditions::NO_MATCHING_NODE).map(|c| c.0),
        Some("False")
    );
    assert_eq!(
        condition(&cc, conditions::MISSING_PEER_CONFIGS).map(|c| c.0),
        Some("False")
    );

    // The L2 lease of webpod: exactly one holder, every node agrees on it.
    let holder = eventually("one L2 lease holder", WAIT, async || {
        let leaders = l2::leaders(&beliefs, lease);
        (leaders.len() == 1 && c.holder(lease).as_deref() == Some(leaders[0].as_str()))
            .then(|| leaders[0].clone())
    })
    .await;
    assert!(holder.starts_with("node"));

    // Events: the address, the sessions, the leader.
    let events = c.server.objects("events.k8s.io/v1", "Event");
    let reasons: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_string(),
                e["regarding"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&("AddressAssigned".into(), "webpod".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("BGPSessionEstablished".into(), "node1".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("LeaderElection".into(), "lbspeaker-operator".into())),
        "{reasons:?}"
    );

    // The local API of an agent and of the operators.
    let st: StatusView = ApiClient::new(c.api_socket("node2"))
        .get("/v1/status")
        .await
        .unwrap();
    assert_eq!(
        (st.roles.as_slice(), st.peers_established, st.ready),
        (
            [
                "bgp".to_string(),
                "dataplane off (maps in memory, nothing forwards)".to_string()
            ]
            .as_slice(),
            1,
            true
        )
    );
    assert_eq!(st.source, "kubernetes (agent, node node2)");
    let st: StatusView = ApiClient::new(c.api_socket(&leader))
        .get("/v1/status")
        .await
        .unwrap();
    assert_eq!(st.roles, ["operator (leader: LB-IPAM, BGP conditions)"]);

    // A password: a Secret nobody references is never read; once the peer config names one,
    // the agents read that one only and peer with it (the tor too).
    c.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: unrelated, namespace: kube-system}\nstringData: {password: nope}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth, namespace: kube-system}\nstringData: {password: s3cret}\n")
        .await;
    for n in 1..=4 {
        let mut p = tor.peer_config("tor", &format!("node{n}")).await.unwrap();
        p.password = Some("s3cret".into());
        tor.update_peer("tor", p).await.unwrap();
    }
    let peer: CiliumBGPPeerConfig = c.server.get("", "cilium-peer").unwrap();
    let mut doc = serde_json::to_value(&peer).unwrap();
    doc["metadata"] = serde_json::json!({"name": "cilium-peer"});
    doc.as_object_mut().unwrap().remove("status");
    doc["spec"]["authSecretRef"] = "bgp-auth".into();
    c.apply(&doc.to_string()).await;
    eventually("sessions back with the password", WAIT, async || {
        let rib = tor_rib(&tor).await;
        let up = tor_sessions(&tor)
            .await
            .iter()
            .all(|(_, s, _)| s == "established");
        (up && rib.get("172.16.1.1/32").map(Vec::len) == Some(4)).then_some(())
    })
    .await;
    let pc: CiliumBGPPeerConfig = eventually("MissingAuthSecret False", WAIT, async || {
        let p: CiliumBGPPeerConfig = c.server.get("", "cilium-peer")?;
        let s = p.status.as_ref()?;
        (condition(&s.conditions, conditions::MISSING_AUTH_SECRET)?
            .1
            .contains("bgp-auth"))
        .then_some(p)
    })
    .await;
    assert_eq!(
        condition(
            &pc.status.unwrap().conditions,
            conditions::MISSING_AUTH_SECRET
        )
        .map(|c| c.0),
        Some("False")
    );
    let secret_reads: BTreeSet<String> = c
        .server
        .requests()
        .iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("lbspeaker-"))
        })
        .filter(|r| r.target.as_ref().is_some_and(|t| t.resource == "secrets"))
        .map(|r| {
            format!(
                "{} {}",
                r.path,
                r.query_param("fieldSelector").unwrap_or("(none)")
            )
        })
        .collect();
    assert_eq!(
        secret_reads,
        ["/api/v1/namespaces/kube-system/secrets metadata.name=bgp-auth".to_string()].into()
    );

    // node4 leaves the ClusterConfig: its node config is deleted, its session ends; the others
    // keep theirs.
    let before: Vec<_> = tor_sessions(&tor).await;
    c.apply(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node4\n  labels: {enable-bgp: \"false\"}\n",
    )
    .await;
    eventually("node4's node config deleted", WAIT, async || {
        c.server
            .object("cilium.io/v2", "CiliumBGPNodeConfig", "", "node4")
            .is_none()
            .then_some(())
    })
    .await;
    eventually("node4's routes withdrawn", WAIT, async || {
        (tor_rib(&tor).await.get("172.16.1.1/32").map(Vec::len) == Some(3)).then_some(())
    })
    .await;
    let after = tor_sessions(&tor).await;
    for n in 0..3 {
        assert_eq!(after[n].1, "established");
        assert!(after[n].2 >= before[n].2, "node{} was not reset", n + 1);
    }

    // The L2 lease renewed at least once (an update), so that the RBAC check below sees every
    // verb the agent uses whatever the machine's speed.
    eventually("a renewal of the L2 lease", WAIT, async || {
        let spec = c
            .server
            .get::<k8s_openapi::api::coordination::v1::Lease>(NS, lease)?
            .spec?;
        (spec.renew_time? != spec.acquire_time?).then_some(())
    })
    .await;

    // A graceful stop: the leader releases its Lease.
    drop(electors);
    c.stop_all().await;
    assert_eq!(c.holder("lbspeaker-operator"), None, "released");

    // Least privilege: every request was granted by deploy/rbac, and every rule there was used.
    let requests = c.server.requests();
    rbac::assert_granted(&requests);
    rbac::assert_all_used(&requests);
    // Reads come from watches: no GET of single objects, and no write without a manager.
    for r in requests.iter().filter(|r| {
        r.user_agent
            .as_deref()
            .is_some_and(|u| u.starts_with("lbspeaker-"))
    }) {
        assert_ne!(r.verb, Some(Verb::Get), "{} {}", r.method, r.path);
        if matches!(r.verb, Some(Verb::Patch | Verb::Update)) {
            assert!(
                r.field_manager
                    .as_deref()
                    .is_some_and(|m| m.starts_with("lbspeaker-")),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_status_reporting_off_the_agent_clears_its_status_and_writes_no_more() {
    let port = free_port();
    let tor = tor(port, 1).await;
    let mut c = Cluster::new();
    c.apply(&seed_manifests(port)).await;
    c.start_operator("op", fast_timers());
    c.start_agent("node1", true);
    eventually("node1's status", WAIT, async || {
        let nc: CiliumBGPNodeConfig = c.server.get("", "node1")?;
        (!nc.status?.bgp_instances.is_empty()).then_some(())
    })
    .await;
    c.stop("node1").await;
    c.server.clear_requests();
    c.start_agent("node1", false);
    eventually("the status cleared", WAIT, async || {
        let nc: CiliumBGPNodeConfig = c.server.get("", "node1")?;
        nc.status
            .is_none_or(|s| s.bgp_instances.is_empty() && s.conditions.is_empty())
            .then_some(())
    })
    .await;
    eventually("the session", WAIT, async || {
        (tor_sessions(&tor).await[0].1 == "established").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status_writes = c
        .server
        .requests()
        .iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("lbspeaker-agent/"))
        })
        .filter(|r| {
            r.target
                .as_ref()
                .is_some_and(|t| t.subresource.as_deref() == Some("status"))
        })
        .count();
    assert_eq!(status_writes, 1, "the one write that cleared it");
    let nc: CiliumBGPNodeConfig = c.server.get("", "node1").unwrap();
    assert!(
        !nc.spec.bgp_instances.is_empty(),
        "the operator's spec stays"
    );
    c.stop_all().await;
    rbac::assert_granted(&c.server.requests());
}
