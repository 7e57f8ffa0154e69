//! The local API's [`Backend`] for the running daemon: BGP from the speaker and the agent's
//! last reconcile, LB-IPAM from the leader's last round (or, on the other processes, from the
//! status every process reads back), and the daemon's own state.

use std::sync::Arc;
use std::time::Instant;

use bgp::wire::Family;
use crds::conditions;
use tokio::sync::watch;

use crate::api::{
    ApiError, Backend, FamilyName, LeaseView, PeerView, PolicyView, PoolView, RouteTable,
    RouteView, ServiceView, StatusView,
};
use crate::bgp::agent::AgentHandle;
use crate::bgp::status::{peer_views, route_views};
use crate::ipam;
use crate::ipam::translate::{ingress_ips, manages};
use crate::l2::L2Handle;
use crate::source::Snapshot;

/// The daemon's state as the API serves it.
#[derive(Clone)]
pub struct DaemonBackend {
    /// The node.
    pub node: String,
    /// When the process started.
    pub started: Instant,
    /// `directory DIR`, `kubernetes`.
    pub source: String,
    /// The latest snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The BGP agent.
    pub agent: AgentHandle,
    /// LB-IPAM's last round (filled only while this process leads).
    pub ipam: watch::Receiver<ipam::Desired>,
    /// Whether this process runs the operator role now.
    pub leader: watch::Receiver<bool>,
    /// Problems of the operator role's last rounds (LB-IPAM and BGP conditions writes).
    pub operator_problems: watch::Receiver<Vec<String>>,
    /// The L2 announcer (`None`: turned off with `--l2-announcements=false`, or no agent role).
    pub l2: Option<L2Handle>,
    /// The dataplane reconciler (`None`: no agent role).
    pub dataplane: Option<crate::dataplane::DataplaneHandle>,
    /// The roles this process runs.
    pub roles: super::Roles,
}

fn family(f: FamilyName) -> Family {
    match f.afi {
        crate::api::Afi::Ipv4 => Family::IPV4_UNICAST,
        crate::api::Afi::Ipv6 => Family::IPV6_UNICAST,
    }
}

/// Pools as their stored status shows them (for processes that do not run LB-IPAM).
pub fn pool_views(snapshot: &Snapshot) -> Vec<PoolView> {
    snapshot
        .lb_ip_pools
        .iter()
        .map(|(key, pool)| {
            let c = crds::lbpool::conditions(pool);
            let msg = |t: &str| {
                conditions::find(c, t)
                    .map(|x| x.message.clone())
                    .unwrap_or_else(|| "?".into())
            };
            let conflict = conditions::find(c, conditions::POOL_CONFLICT)
                .filter(|x| x.status == "True")
                .map(|x| x.message.clone());
            PoolView {
                name: key.name.clone(),
                disabled: pool.spec.disabled,
                conflicting: conflict.is_some(),
                conflict,
                ips_total: msg(conditions::IPS_TOTAL),
                ips_available: msg(conditions::IPS_AVAILABLE),
                ips_used: msg(conditions::IPS_USED),
            }
        })
        .collect()
}

/// LoadBalancer services as their stored status shows them.
pub fn service_views(snapshot: &Snapshot) -> Vec<ServiceView> {
    snapshot
        .services
        .iter()
        .filter(|(_, s)| manages(s))
        .map(|(key, svc)| {
            let cond = svc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .and_then(|c| conditions::find(c, conditions::IPAM_REQUEST_SATISFIED));
            ServiceView {
                namespace: key.namespace.clone().unwrap_or_default(),
                name: key.name.clone(),
                addresses: ingress_ips(svc.status.as_ref())
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                reason: cond.map_or_else(|| "pending".into(), |c| c.reason.clone()),
                message: cond.map(|c| c.message.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

impl Backend for DaemonBackend {
    async fn bgp_peers(&self) -> Vec<PeerView> {
        peer_views(&self.node, &self.agent.speaker).await
    }

    async fn bgp_routes(
        &self,
        table: RouteTable,
        f: FamilyName,
    ) -> Result<Vec<RouteView>, ApiError> {
        Ok(route_views(
            &self.node,
            &self.agent.speaker,
            &self.agent.ages,
            table,
            family(f),
        )
        .await)
    }

    async fn bgp_route_policies(&self) -> Vec<PolicyView> {
        self.agent.view.borrow().desired.policies.clone()
    }

    async fn ipam_pools(&self) -> Result<Vec<PoolView>, ApiError> {
        if *self.leader.borrow() {
            let v = self.ipam.borrow().pool_views.clone();
            if !v.is_empty() {
                return Ok(v);
            }
        }
        Ok(pool_views(&self.snapshots.borrow()))
    }

    async fn ipam_services(&self) -> Result<Vec<ServiceView>, ApiError> {
        if *self.leader.borrow() {
            let v = self.ipam.borrow().service_views.clone();
            if !v.is_empty() {
                return Ok(v);
            }
        }
        Ok(service_views(&self.snapshots.borrow()))
    }

    async fn l2_leases(&self) -> Result<Vec<LeaseView>, ApiError> {
        match &self.l2 {
            None if !self.roles.agent => Err(ApiError::unavailable(
                "L2 announcements do not run in this process (it has no agent role)",
            )),
            None => Err(ApiError::unavailable(
                "L2 announcements are turned off in this process (--l2-announcements=false)",
            )),
            Some(h) => h.leases().map_err(ApiError::unavailable),
        }
    }

    async fn l2_counters(&self) -> Option<l2announce::CountersSnapshot> {
        self.l2.as_ref().and_then(L2Handle::counters)
    }

    async fn lb_list(&self) -> Result<serde_json::Value, ApiError> {
        let Some(dataplane) = &self.dataplane else {
            return Err(ApiError::unavailable(
                "the dataplane does not run in this process (it has no agent role)",
            ));
        };
        let view = dataplane.list().await.map_err(|message| ApiError {
            status: 500,
            message,
        })?;
        serde_json::to_value(view).map_err(|e| ApiError {
            status: 500,
            message: e.to_string(),
        })
    }

    async fn dataplane_metrics(&self) -> Option<crate::dataplane::DataplaneMetrics> {
        let dataplane = self.dataplane.as_ref()?;
        let view = dataplane.view.borrow().clone();
        Some(crate::dataplane::DataplaneMetrics {
            view,
            counters: dataplane.counters().await,
        })
    }

    async fn status(&self) -> StatusView {
        let peers = self.bgp_peers().await;
        let view = self.agent.view.borrow().clone();
        let leading = *self.leader.borrow();
        let mut problems: Vec<String> = self
            .snapshots
            .borrow()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect();
        problems.extend(view.errors.iter().cloned());
        problems.extend(self.operator_problems.borrow().iter().cloned());
        let dataplane = self.dataplane.as_ref().map(|d| d.view.borrow().clone());
        if let Some(d) = &dataplane {
            problems.extend(d.problems.iter().cloned());
        }
        if let Some(l2) = &self.l2 {
            problems.extend(l2.problems());
        }
        StatusView {
            node: self.node.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            source: self.source.clone(),
            roles: {
                let mut roles = Vec::new();
                if self.roles.agent {
                    roles.push("bgp".to_string());
                }
                if self.roles.operator {
                    roles.push(if leading {
                        "operator (leader: LB-IPAM, BGP conditions)".into()
                    } else {
                        "operator (standby)".into()
                    });
                }
                if self.l2.as_ref().is_some_and(|h| h.failed.is_none()) {
                    roles.push("l2 announcements".into());
                }
                if let Some(d) = &dataplane {
                    roles.push(d.role());
                }
                roles
            },
            ready: view.ready,
            peers_established: peers
                .iter()
                .filter(|p| p.session_state == "established")
                .count(),
            peers_total: peers.len(),
            problems,
        }
    }
}
