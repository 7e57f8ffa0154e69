//! The local API end to end over a real Unix socket: server, client, errors, and the socket's
//! life cycle (mode 0600, or 0660 with a group; stale sockets replaced, live ones refused).

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use agent_glue::api::client::{Client, ClientError};
use agent_glue::api::server::{ServeError, bind, serve};
use agent_glue::api::{
    ApiError, Backend, FamilyCounters, FamilyName, LeaseView, PeerView, PolicyView, PoolView,
    RouteTable, RouteView, ServiceView, StatusView,
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
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
