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
//! | `lbspeaker_dataplane_kernel` | node | 1 when the eBPF maps are the kernel's (0: off, or not loaded) |
//! | `lbspeaker_dataplane_frontends` | node | frontends programmed |
//! | `lbspeaker_dataplane_interface_attached` | node, interface, role | 1 when the programs are attached |
//! | `lbspeaker_dataplane_map_operations_total` | node, op (update, delete) | map operations since start (conntrack GC included) |
//! | `lbspeaker_dataplane_sync_failures_total` | node | passes whose map update failed (retried) |
//! | `lbspeaker_dataplane_last_apply_seconds` | node | how long the last pass that changed the maps took, from its snapshot |
//! | `lbspeaker_dataplane_problems` | node | problems `lbspeaker status` lists for the dataplane |
//! | `lbspeaker_dataplane_packets_total` | node, counter | the programs' counters (translated, established, reversed, icmp, no_backend, snat_fail, redirect, fragment) |
//! | `lbspeaker_dataplane_conntrack_flows` | node | flows the last GC pass kept |
//! | `lbspeaker_dataplane_conntrack_gc_deleted_total` | node | conntrack entries GC deleted |

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
    if let Some(d) = backend.dataplane_metrics().await {
        register_dataplane(&mut registry, &status.node, &d);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

fn register_dataplane(registry: &mut Registry, node: &str, d: &crate::dataplane::DataplaneMetrics) {
    let n = labels(&[("node", node)]);
    let gauge = |v: i64| {
        let f = Family::<Labels, Gauge>::default();
        f.get_or_create(&n).set(v);
        f
    };
    let counter = |v: u64| {
        let f = Family::<Labels, Counter>::default();
        f.get_or_create(&n).inc_by(v);
        f
    };
    let v = &d.view;
    let int = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
    registry.register(
        "dataplane_kernel",
        "1 when the eBPF maps are the kernel's (0: off, or not loaded)",
        gauge(i64::from(v.kernel)),
    );
    registry.register(
        "dataplane_frontends",
        "Frontends programmed",
        gauge(int(v.frontends)),
    );
    let attached = Family::<Labels, Gauge>::default();
    for i in &v.interfaces {
        let mut l = n.clone();
        l.push(("interface".into(), i.name.clone()));
        l.push(("role".into(), i.role.clone()));
        attached.get_or_create(&l).set(i64::from(i.attached));
    }
    registry.register(
        "dataplane_interface_attached",
        "1 when the programs are attached to the interface",
        attached,
    );
    let ops = Family::<Labels, Counter>::default();
    for (op, value) in [("update", v.updates_total), ("delete", v.deletes_total)] {
        let mut l = n.clone();
        l.push(("op".into(), op.into()));
        ops.get_or_create(&l).inc_by(value);
    }
    registry.register(
        "dataplane_map_operations",
        "Map operations since start",
        ops,
    );
    registry.register(
        "dataplane_sync_failures",
        "Passes whose map update failed",
        counter(v.failures_total),
    );
    let last = Family::<Labels, FloatGauge>::default();
    if let Some(a) = &v.last_apply {
        last.get_or_create(&n).set(a.elapsed_us as f64 / 1e6);
    }
    registry.register(
        "dataplane_last_apply_seconds",
        "Duration of the last pass that changed the maps, from its snapshot",
        last,
    );
    registry.register(
        "dataplane_problems",
        "Dataplane problems lbspeaker status lists",
        gauge(int(v.problems.len())),
    );
    let packets = Family::<Labels, Counter>::default();
    for (name, value) in &d.counters {
        let mut l = n.clone();
        l.push(("counter".into(), (*name).to_owned()));
        packets.get_or_create(&l).inc_by(*value);
    }
    registry.register(
        "dataplane_packets",
        "Counters of the eBPF programs",
        packets,
    );
    registry.register(
        "dataplane_conntrack_flows",
        "Flows the last conntrack GC pass kept",
        gauge(int(v.last_gc.as_ref().map_or(0, |g| g.flows_kept))),
    );
    registry.register(
        "dataplane_conntrack_gc_deleted",
        "Conntrack entries GC deleted",
        counter(v.gc_deleted_total),
    );
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
