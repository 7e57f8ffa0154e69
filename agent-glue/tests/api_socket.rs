//! The local API end to end over a real Unix socket: server, client, errors, and the socket's
//! life cycle (mode 0600, or 0660 with a group; stale sockets replaced, live ones refused).

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use agent_glue::api::client::{Client, ClientError};
use agent_glue::api::server::{ServeError, bind, serve};
use agent_glue::api::{
    ApiError, Backend, BfdSessionView, BfdView, FamilyCounters, FamilyName, FibRouteView, FibView,
    LeaseView, PeerView, PolicyView, PoolView, RouteTable, RouteView, ServiceView, StatusView,
};

/// A backend with fixed contents: the test is about the transport, not the daemon.
struct Fixture;

impl Backend for Fixture {
    async fn bgp_peers(&self) -> Vec<PeerView> {
        vec![PeerView {
            node: "node1".into(),
            instance: "instance-65001".into(),
            name: "tor".into(),
            local_asn: 65001,
            peer_asn: 65000,
            peer_address: "192.168.10.200".into(),
            session_state: "established".into(),
            uptime_seconds: Some(5),
            hold_time_seconds: 9,
            keepalive_seconds: 3,
            families: vec![FamilyCounters {
                afi: "ipv4".into(),
                safi: "unicast".into(),
                received: 4,
                advertised: 2,
            }],
            last_error: None,
        }]
    }
    async fn bgp_routes(
        &self,
        table: RouteTable,
        family: FamilyName,
    ) -> Result<Vec<RouteView>, ApiError> {
        if family.afi == agent_glue::api::Afi::Ipv6 {
            return Err(ApiError {
                status: 404,
                message: "no ipv6 here".into(),
            });
        }
        Ok(vec![RouteView {
            node: "node1".into(),
            vrouter: 65001,
            peer: (table == RouteTable::Advertised).then(|| "tor".into()),
            prefix: "172.20.0.0/24".into(),
            next_hop: "0.0.0.0".into(),
            age_seconds: 1,
            best: true,
            attrs: vec![],
        }])
    }
    async fn bgp_route_policies(&self) -> Vec<PolicyView> {
        vec![]
    }
    async fn ipam_pools(&self) -> Result<Vec<PoolView>, ApiError> {
        Ok(vec![])
    }
    async fn ipam_services(&self) -> Result<Vec<ServiceView>, ApiError> {
        Ok(vec![])
    }
    async fn l2_leases(&self) -> Result<Vec<LeaseView>, ApiError> {
        Err(ApiError::unavailable("L2 announcements are not enabled"))
    }
    async fn lb_list(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!([]))
    }
    async fn bfd(&self) -> BfdView {
        BfdView {
            running: true,
            sessions: vec![BfdSessionView {
                node: "node1".into(),
                peers: vec!["instance-65001/tor".into()],
                peer_address: "192.168.10.200".into(),
                local_address: None,
                state: "up".into(),
                remote_state: "up".into(),
                local_diag: "no-diagnostic".into(),
                remote_diag: "no-diagnostic".into(),
                transmit_interval_ms: 300,
                receive_interval_ms: 300,
                detect_multiplier: 3,
                detection_time_ms: Some(900),
                remote_detect_multiplier: 3,
                uptime_seconds: Some(75),
                held_down_ms: None,
                flaps: 1,
                bgp_resets: 1,
                packets_in: 250,
                packets_out: 251,
                error: None,
            }],
            bad_ttl: 2,
            ..BfdView::default()
        }
    }
    async fn fib(&self) -> Vec<FibView> {
        vec![FibView {
            node: "node1".into(),
            instance: "instance-65001".into(),
            table: 254,
            protocol: 212,
            metric: 20,
            accept: vec!["172.20.0.0/16 le 24".into()],
            converged: true,
            wanted: 4,
            routes: vec![FibRouteView {
                prefix: "172.20.1.0/24".into(),
                next_hops: vec!["via 192.168.10.101 dev eth1".into()],
            }],
            conflicts: vec!["172.20.2.0/24".into()],
            unresolved: vec!["172.20.3.0/24: no route to its next hop 192.168.30.1".into()],
            found_at_start: 0,
            adopted: 0,
            added: 3,
            replaced: 0,
            deleted: 2,
            last_error: None,
        }]
    }
    async fn status(&self) -> StatusView {
        StatusView {
            node: "node1".into(),
            version: "test".into(),
            uptime_seconds: 1,
            source: "fixture".into(),
            roles: vec!["bgp".into()],
            ready: true,
            peers_established: 1,
            peers_total: 1,
            problems: vec![],
        }
    }
}

#[tokio::test]
async fn the_cli_client_reads_what_the_server_serves_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/api.sock");
    let listener = bind(&sock, None).await.unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root's only by default");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::new(Fixture), async move {
        let _ = stop_rx.await;
    }));

    let client = Client::new(&sock);
    let peers: Vec<PeerView> = client.get("/v1/bgp/peers").await.unwrap();
    assert_eq!(peers, Fixture.bgp_peers().await);
    let routes: Vec<RouteView> = client
        .get("/v1/bgp/routes/advertised/ipv4/unicast")
        .await
        .unwrap();
    assert_eq!(routes[0].peer.as_deref(), Some("tor"));
    let routes: Vec<RouteView> = client
        .get("/v1/bgp/routes/available/ipv4/unicast")
        .await
        .unwrap();
    assert_eq!(routes[0].peer, None);

    let bfd: BfdView = client.get("/v1/bfd/peers").await.unwrap();
    assert_eq!(bfd, Fixture.bfd().await);
    let fib: Vec<FibView> = client.get("/v1/fib").await.unwrap();
    assert_eq!(fib, Fixture.fib().await);

    // Errors of the backend come back with their status and message.
    match client
        .get::<Vec<RouteView>>("/v1/bgp/routes/available/ipv6/unicast")
        .await
    {
        Err(ClientError::Api(e)) => {
            assert_eq!((e.status, e.message.as_str()), (404, "no ipv6 here"))
        }
        other => panic!("{other:?}"),
    }
    match client.get::<Vec<LeaseView>>("/v1/l2/leases").await {
        Err(e) => assert!(e.to_string().contains("not enabled"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A family users cannot ask for is refused by the router, not the backend.
    assert!(
        client
            .get_json("/v1/bgp/routes/available/ipv5/unicast")
            .await
            .is_err()
    );

    // A second daemon on the same socket is refused while the first answers.
    match bind(&sock, None).await {
        Err(ServeError::InUse(_)) => {}
        other => panic!("{other:?}"),
    }
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();

    // After the first stopped, its socket file is stale and is replaced.
    assert!(sock.exists());
    let again = bind(&sock, None).await.unwrap();
    drop(again);
}

#[tokio::test]
async fn with_a_group_the_socket_is_its_owners_and_that_groups() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let g = nix::unistd::Gid::from_raw(4242);
    let _l = bind(&sock, Some(g)).await.unwrap();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(
        (meta.permissions().mode() & 0o777, meta.gid()),
        (0o660, 4242)
    );
}

#[tokio::test]
async fn a_missing_daemon_gets_a_message_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::new(dir.path().join("none.sock"))
        .get_json("/v1/status")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is the daemon running"), "{err}");
}

#[tokio::test]
async fn metrics_are_computed_from_the_same_backend_as_the_api() {
    let text = agent_glue::metrics::render(&Fixture).await;
    for line in [
        "lbspeaker_bgp_session_state{node=\"node1\",instance=\"instance-65001\",peer=\"tor\",peer_address=\"192.168.10.200\"} 1",
        "lbspeaker_bgp_received_routes{node=\"node1\",instance=\"instance-65001\",peer=\"tor\",afi=\"ipv4\",safi=\"unicast\"} 4",
        "lbspeaker_bgp_advertised_routes{node=\"node1\",instance=\"instance-65001\",peer=\"tor\",afi=\"ipv4\",safi=\"unicast\"} 2",
        "lbspeaker_ready{node=\"node1\"} 1",
        "lbspeaker_bfd_session_state{node=\"node1\",peer_address=\"192.168.10.200\",peers=\"instance-65001/tor\"} 1",
        "lbspeaker_bfd_session_flaps_total{node=\"node1\",peer_address=\"192.168.10.200\"} 1",
        "lbspeaker_bfd_bgp_resets_total{node=\"node1\",peer_address=\"192.168.10.200\"} 1",
        "lbspeaker_bfd_discarded_packets_total{node=\"node1\",reason=\"bad_ttl\"} 2",
        "lbspeaker_fib_routes{node=\"node1\",instance=\"instance-65001\",table=\"254\"} 1",
        "lbspeaker_fib_not_installed{node=\"node1\",instance=\"instance-65001\",reason=\"conflict\"} 1",
        "lbspeaker_fib_not_installed{node=\"node1\",instance=\"instance-65001\",reason=\"unresolved\"} 1",
        "lbspeaker_fib_operations_total{node=\"node1\",instance=\"instance-65001\",op=\"delete\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn bfd_and_fib_tables_show_their_columns_and_what_is_not_installed() {
    use agent_glue::api::render;
    let t = render::bfd(&Fixture.bfd().await);
    let header: Vec<&str> = t
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "Node",
            "Peer Address",
            "BGP Peers",
            "State",
            "Remote State",
            "Diagnostic",
            "TX/RX ms",
            "Multiplier",
            "Detect ms",
            "Uptime",
            "Flaps",
            "BGP Resets"
        ]
    );
    let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            "node1",
            "192.168.10.200",
            "instance-65001/tor",
            "up",
            "up",
            "no-diagnostic",
            "300/300",
            "3",
            "900",
            "1m15s",
            "1",
            "1"
        ]
    );
    assert!(render::bfd(&BfdView::default()).contains("BFD is not running"));
    let f = render::fib(&Fixture.fib().await);
    assert!(
        f.lines()
            .nth(1)
            .unwrap()
            .ends_with("172.20.1.0/24   via 192.168.10.101 dev eth1"),
        "{f}"
    );
    assert!(f.contains("not installed (instance-65001): 172.20.2.0/24: a route that is not ours holds it at metric 20"), "{f}");
    assert!(
        f.contains(
            "not installed (instance-65001): 172.20.3.0/24: no route to its next hop 192.168.30.1"
        ),
        "{f}"
    );
    assert!(render::fib(&[]).contains("No instance installs routes"));
}
