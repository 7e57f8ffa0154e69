//! `--bgp-control-plane=false` (Cilium's `bgpControlPlane.enabled: false`, the `l2-only`
//! overlay): on the seed scenario through the in-memory API server, the operator still gives
//! the service its address, but neither role lists, watches or writes any BGP resource or
//! Secret, no CiliumBGPNodeConfig appears and the tor never sees a session.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::time::Duration;

use agent_glue::api::StatusView;
use agent_glue::api::client::Client as ApiClient;
use kube_support::{Cluster, eventually, fast_timers, free_port, rbac, seed_manifests, tor};

const WAIT: Duration = Duration::from_secs(20);

const BGP_RESOURCES: [&str; 6] = [
    "ciliumbgpclusterconfigs",
    "ciliumbgppeerconfigs",
    "ciliumbgpadvertisements",
    "ciliumbgpnodeconfigs",
    "ciliumbgpnodeconfigoverrides",
    "ciliumpodippools",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_bgp_control_plane_addresses_are_given_and_nothing_bgp_is_requested() {
    let port = free_port();
    let tor = tor(port, 1).await;
    let mut c = Cluster::new();
    c.apply(&seed_manifests(port)).await;
    c.start_operator_with("op", fast_timers(), false);
    c.start_agent_with("node1", true, false);

    eventually("webpod's address", WAIT, async || {
        (c.ingress("default", "webpod") == ["172.16.1.1"]).then_some(())
    })
    .await;
    // The agent has listed everything it reads and applied its first reconcile.
    let api = ApiClient::new(c.api_socket("node1"));
    let status: StatusView = eventually("the agent ready", WAIT, async || {
        let s: StatusView = api.get("/v1/status").await.ok()?;
        s.ready.then_some(s)
    })
    .await;
    // Long enough for a session (connect retry 1 s) and a node config write, had they run.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let requests = c.server.requests();
    let ours: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("lbspeaker-"))
        })
        .collect();
    assert!(!ours.is_empty());
    let bgp: Vec<String> = ours
        .iter()
        .filter(|r| {
            r.target.as_ref().is_some_and(|t| {
                BGP_RESOURCES.contains(&t.resource.as_str()) || t.resource == "secrets"
            })
        })
        .map(|r| {
            format!(
                "{} {} {}",
                r.user_agent.as_deref().unwrap(),
                r.method,
                r.path
            )
        })
        .collect();
    assert!(bgp.is_empty(), "BGP requests: {bgp:#?}");
    assert!(
        c.server
            .object("cilium.io/v2", "CiliumBGPNodeConfig", "", "node1")
            .is_none(),
        "no node config without BGP"
    );
    let sessions = tor.peer_states("tor").await.unwrap();
    assert!(
        sessions.iter().all(|p| p.state.name() != "established"),
        "{sessions:?}"
    );
    assert!(
        !status.roles.iter().any(|r| r == "bgp"),
        "no BGP role: {:?}",
        status.roles
    );
    assert!(
        status.problems.is_empty(),
        "nothing to complain about: {:?}",
        status.problems
    );
    c.stop_all().await;
    // What was sent is still within what deploy/rbac grants.
    rbac::assert_granted(&c.server.requests());
}
