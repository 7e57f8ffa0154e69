//! `/metrics` (Prometheus text), `/healthz` and `/readyz` on the daemon's `--metrics-addr`.
//!
//! Metrics are computed at scrape time from the same [`Backend`] the local API reads, so the two
//! never disagree and nothing is kept twice:
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `lbspeaker_bgp_session_state` | node, instance, peer, peer_address | 1 when Established, else 0 |
//! | `lbspeaker_bgp_received_routes` | node, instance, peer, afi, safi | routes received |
//! | `lbspeaker_bgp_advertised_routes` | node, instance, peer, afi, safi | routes advertised |
//! | `lbspeaker_ipam_pool_ips` | pool, state (total, used, available) | addresses (as a float: exact counts are in `lbspeaker ipam pools`) |
//! | `lbspeaker_ready` | node | 1 once the first reconcile has completed |
//! | `lbspeaker_l2_announced_addresses` | node | addresses this node answers ARP/NDP for now |
//! | `lbspeaker_l2_<counter>_total` | node | the L2 announcer's counters (below) |
//!
//! L2 counters: `arp_replies`, `na_replies` (requests answered), `gratuitous_arp`,
//! `unsolicited_na` (announcements sent), `malformed` (frames that did not decode),
//! `send_errors`, `socket_errors`, `leases_acquired`, `leases_renewed`, `leases_released`,
//! `leases_lost`, `lease_conflicts` (lost optimistic-concurrency races), `lease_errors`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::api::Backend;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Renders every metric in the Prometheus text format.
pub async fn render<B: Backend>(backend: &B) -> String {
    let mut registry = Registry::with_prefix("lbspeaker");
    let state = Family::<Labels, Gauge>::default();
    let received = Family::<Labels, Gauge>::default();
    let advertised = Family::<Labels, Gauge>::default();
    let pool_ips = Family::<Labels, FloatGauge>::default();
    let ready = Family::<Labels, Gauge>::default();

    let status = backend.status().await;
    ready
        .get_or_create(&labels(&[("node", &status.node)]))
        .set(i64::from(status.ready));
    for p in backend.bgp_peers().await {
        let base = [
            ("node", p.node.as_str()),
            ("instance", &p.instance),
            ("peer", &p.name),
        ];
        let mut l = labels(&base);
        l.push(("peer_address".into(), p.peer_address.clone()));
        state
            .get_or_create(&l)
            .set(i64::from(p.session_state == "established"));
        for f in &p.families {
            let mut l = labels(&base);
            l.push(("afi".into(), f.afi.clone()));
            l.push(("safi".into(), f.safi.clone()));
            received
                .get_or_create(&l)
                .set(i64::try_from(f.received).unwrap_or(i64::MAX));
            advertised
                .get_or_create(&l)
                .set(i64::try_from(f.advertised).unwrap_or(i64::MAX));
        }
    }
    if let Ok(pools) = backend.ipam_pools().await {
        for p in pools {
            for (kind, count) in [
                ("total", &p.ips_total),
                ("used", &p.ips_used),
                ("available", &p.ips_available),
            ] {
                let value = count.parse::<f64>().unwrap_or(f64::NAN);
                pool_ips
                    .get_or_create(&labels(&[("pool", &p.name), ("state", kind)]))
                    .set(value);
            }
        }
    }
    registry.register(
        "bgp_session_state",
        "1 when the BGP session is Established",
        state,
    );
    registry.register(
        "bgp_received_routes",
        "Routes received from the peer",
        received,
    );
    registry.register(
        "bgp_advertised_routes",
        "Routes advertised to the peer",
        advertised,
    );
    registry.register(
        "ipam_pool_ips",
        "Addresses of a CiliumLoadBalancerIPPool",
        pool_ips,
    );
    registry.register("ready", "1 once the first reconcile has completed", ready);
    if let Some(c) = backend.l2_counters().await {
        let node = labels(&[("node", &status.node)]);
        let announced = Family::<Labels, Gauge>::default();
        let n = backend
            .l2_leases()
            .await
            .map_or(0, |rows| rows.iter().filter(|r| r.announcing).count());
        announced
            .get_or_create(&node)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        registry.register(
            "l2_announced_addresses",
            "Addresses this node answers ARP/NDP for",
            announced,
        );
        for (name, help, value) in [
            ("l2_arp_replies", "ARP requests answered", c.arp_replies),
            (
                "l2_na_replies",
                "Neighbour solicitations answered",
                c.na_replies,
            ),
            (
                "l2_gratuitous_arp",
                "Gratuitous ARP frames sent",
                c.gratuitous_arp,
            ),
            (
                "l2_unsolicited_na",
                "Unsolicited neighbour advertisements sent",
                c.unsolicited_na,
            ),
            (
                "l2_malformed",
                "Frames that passed the socket filter but did not decode",
                c.malformed,
            ),
            (
                "l2_send_errors",
                "Frames that could not be sent",
                c.send_errors,
            ),
            (
                "l2_socket_errors",
                "Packet sockets or multicast memberships that could not be opened",
                c.socket_errors,
            ),
            ("l2_leases_acquired", "Leases won", c.leases_acquired),
            (
                "l2_leases_renewed",
                "Lease renewals written",
                c.leases_renewed,
            ),
            (
                "l2_leases_released",
                "Leases given up (not eligible, withdrawn, shutdown)",
                c.leases_released,
            ),
            (
                "l2_leases_lost",
                "Leases lost (renew deadline passed, taken by another node)",
                c.leases_lost,
            ),
            (
                "l2_lease_conflicts",
                "Lease writes that lost an optimistic-concurrency race",
                c.lease_conflicts,
            ),
            (
                "l2_lease_errors",
                "Lease backend failures other than conflicts",
                c.lease_errors,
            ),
        ] {
            let family = Family::<Labels, Counter>::default();
            family.get_or_create(&node).inc_by(value);
            registry.register(name, help, family);
        }
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The HTTP routes: `/metrics`, `/healthz` (the process answers), `/readyz` (first reconcile
/// done: 200, else 503).
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(b): State<Arc<B>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    render(b.as_ref()).await,
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(b): State<Arc<B>>| async move {
                if b.status().await.ready {
                    (StatusCode::OK, "ready\n").into_response()
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: first reconcile not finished\n",
                    )
                        .into_response()
                }
            }),
        )
        .with_state(backend)
}
