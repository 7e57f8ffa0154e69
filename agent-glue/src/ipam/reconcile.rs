//! The pure step: a snapshot (plus what this process wrote and the source does not show yet)
//! in, the Service and pool statuses LB-IPAM wants out. Shared by `lbspeaker run` and the
//! Kubernetes operator; [`super::apply`] writes the difference.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::conditions::{self, Status};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use lbipam::{Addr, AddrRange, Block, allocate};

use super::translate::{ingress_ips, manages, translate};
use crate::api::views::{PoolView, ServiceView};
use crate::source::{ObjectKey, Snapshot};

/// Statuses written but not yet seen in the source, used as the truth meanwhile, so that a
/// failed or slow write never loses an allocation.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    /// Service statuses.
    pub services: BTreeMap<ObjectKey, ServiceStatus>,
    /// Pool conditions.
    pub pools: BTreeMap<ObjectKey, Vec<Condition>>,
}

/// A Service status LB-IPAM wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredService {
    /// The Service.
    pub key: ObjectKey,
    /// Its identity (name, namespace, creation time).
    pub meta: ObjectMeta,
    /// The whole status to store.
    pub status: ServiceStatus,
}

/// Pool conditions LB-IPAM wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPool {
    /// The pool.
    pub key: ObjectKey,
    /// Its identity.
    pub meta: ObjectMeta,
    /// The whole condition list to store.
    pub conditions: Vec<Condition>,
}

/// Everything one reconcile wants.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Services LB-IPAM manages, and services it used to manage whose status it clears.
    pub services: Vec<DesiredService>,
    /// Every pool.
    pub pools: Vec<DesiredPool>,
    /// For `lbspeaker ipam pools`.
    pub pool_views: Vec<PoolView>,
    /// For `lbspeaker ipam services`.
    pub service_views: Vec<ServiceView>,
}

/// Reason of the counting conditions (Cilium's).
const NO_REASON: &str = "noreason";

fn status_of<'a>(
    pending: &'a Pending,
    key: &ObjectKey,
    svc: &'a Service,
) -> Option<&'a ServiceStatus> {
    pending.services.get(key).or(svc.status.as_ref())
}

/// Computes the wanted statuses. `now` stamps conditions whose status changes.
pub fn reconcile(snapshot: &Snapshot, pending: &Pending, now: Timestamp) -> Desired {
    let input = translate(snapshot, |key, svc| {
        ingress_ips(status_of(pending, key, svc))
    });
    let out = allocate(&input.pools, &input.services);
    let mut desired = Desired::default();

    for o in &out.services {
        let key = &input.service_keys[o.service];
        let Some(svc) = snapshot.services.get(key) else {
            continue;
        };
        let mut status = status_of(pending, key, svc).cloned().unwrap_or_default();
        status.load_balancer = Some(LoadBalancerStatus {
            ingress: (!o.addresses.is_empty()).then(|| {
                o.addresses
                    .iter()
                    .map(|a| LoadBalancerIngress {
                        ip: Some(a.ip.to_string()),
                        ..Default::default()
                    })
                    .collect()
            }),
        });
        let mut conds = status.conditions.take().unwrap_or_default();
        conditions::set(
            &mut conds,
            conditions::new(
                conditions::IPAM_REQUEST_SATISFIED,
                if o.satisfied() {
                    Status::True
                } else {
                    Status::False
                },
                o.reason.as_str(),
                o.message.clone(),
                svc.metadata.generation,
                now,
            ),
        );
        status.conditions = Some(conds);
        desired.service_views.push(ServiceView {
            namespace: key.namespace.clone().unwrap_or_default(),
            name: key.name.clone(),
            addresses: o.addresses.iter().map(|a| a.ip.to_string()).collect(),
            reason: o.reason.as_str().to_string(),
            message: o.message.clone(),
        });
        desired.services.push(DesiredService {
            key: key.clone(),
            meta: svc.metadata.clone(),
            status,
        });
    }

    // Services LB-IPAM no longer manages (no longer LoadBalancer) but whose status it wrote:
    // drop its condition and the addresses it gave.
    let ranges: Vec<AddrRange> = input
        .pools
        .iter()
        .flat_map(|p| p.blocks.iter())
        .filter_map(|b| match *b {
            Block::Cidr(n) => Some(AddrRange::of_cidr(n)),
            Block::Range { start, stop } => AddrRange::new(start, stop),
        })
        .collect();
    let ours = |ip: IpAddr| ranges.iter().any(|r| r.contains(Addr::from(ip)));
    for (key, svc) in &snapshot.services {
        if manages(svc) {
            continue;
        }
        let Some(status) = status_of(pending, key, svc) else {
            continue;
        };
        let conds = status.conditions.clone().unwrap_or_default();
        if conditions::find(&conds, conditions::IPAM_REQUEST_SATISFIED).is_none() {
            continue;
        }
        let mut status = status.clone();
        let kept: Vec<Condition> = conds
            .into_iter()
            .filter(|c| c.type_ != conditions::IPAM_REQUEST_SATISFIED)
            .collect();
        status.conditions = (!kept.is_empty()).then_some(kept);
        if let Some(lb) = status.load_balancer.as_mut() {
            let left: Vec<LoadBalancerIngress> = lb
                .ingress
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| {
                    !i.ip
                        .as_deref()
                        .and_then(|s| s.parse().ok())
                        .is_some_and(ours)
                })
                .collect();
            lb.ingress = (!left.is_empty()).then_some(left);
        }
        desired.services.push(DesiredService {
            key: key.clone(),
            meta: svc.metadata.clone(),
            status,
        });
    }

    for p in &out.pools {
        let key = &input.pool_keys[p.pool];
        let Some(pool) = snapshot.lb_ip_pools.get(key) else {
            continue;
        };
        let mut conds: Vec<Condition> = pending
            .pools
            .get(key)
            .cloned()
            .or_else(|| pool.status.as_ref().map(|s| s.conditions.clone()))
            .unwrap_or_default();
        let gen_ = pool.metadata.generation;
        let count = |t: &str, n: &lbipam::Count| {
            conditions::new(t, Status::Unknown, NO_REASON, n.to_string(), gen_, now)
        };
        conditions::set(&mut conds, count(conditions::IPS_TOTAL, &p.total));
        conditions::set(&mut conds, count(conditions::IPS_AVAILABLE, &p.available));
        conditions::set(&mut conds, count(conditions::IPS_USED, &p.used));
        let conflict = match &p.conflict {
            Some(why) => conditions::new(
                conditions::POOL_CONFLICT,
                Status::True,
                if input.pools[p.pool].invalid_blocks.is_empty() {
                    "cidr_overlap"
                } else {
                    "invalid_block"
                },
                why.clone(),
                gen_,
                now,
            ),
            None => conditions::new(
                conditions::POOL_CONFLICT,
                Status::False,
                "no_conflict",
                "",
                gen_,
                now,
            ),
        };
        conditions::set(&mut conds, conflict);
        match &input.selector_errors[p.pool] {
            Some(e) => conditions::set(
                &mut conds,
                conditions::new(
                    conditions::BAD_SERVICE_SELECTOR,
                    Status::True,
                    "invalid_selector",
                    e.clone(),
                    gen_,
                    now,
                ),
            ),
            None => conds.retain(|c| c.type_ != conditions::BAD_SERVICE_SELECTOR),
        }
        desired.pool_views.push(PoolView {
            name: key.name.clone(),
            disabled: pool.spec.disabled,
            conflicting: p.conflict.is_some(),
            conflict: p.conflict.clone(),
            ips_total: p.total.to_string(),
            ips_available: p.available.to_string(),
            ips_used: p.used.to_string(),
        });
        desired.pools.push(DesiredPool {
            key: key.clone(),
            meta: pool.metadata.clone(),
            conditions: conds,
        });
    }
    desired
}
