//! lbspeaker on a Kubernetes API server: the same reconcilers as `lbspeaker run`, with the
//! API server as source, status sink, lease store and leader election.
//!
//! ```text
//!  API server ──watch──► source (one watcher per kind) ──► Snapshot ──► daemon::run (same reconcilers)
//!      ▲                                                                   │
//!      ├── sink: status subresource (server-side apply), Events ◄──────────┘
//!      ├── lease: coordination.k8s.io/v1 Leases (one watcher, conditional writes)
//!      │     └── leader: the operator's Lease (lbspeaker operator)
//!      └── nodeconfig: CiliumBGPNodeConfig specs (lbspeaker operator)
//! ```
//!
//! - [`client`]: the kube client of each role (in-cluster or `--kubeconfig`), with our user
//!   agent and the [`ratelimit`] that scales with the number of services.
//! - [`convert`]: API objects into the snapshot's [`crate::source::Object`]s (validated as the
//!   directory source validates manifests).
//! - [`source`]: [`source::KubeSource`], watchers publishing [`crate::source::Snapshot`]s.
//! - [`sink`]: [`sink::KubeSink`], the [`crate::source::StatusSink`] over the status subresource.
//! - [`events`]: Kubernetes Events for the transitions people look for.
//! - [`lease`]: [`lease::KubeLeaseBackend`], `l2announce`'s [`l2announce::LeaseBackend`] over
//!   Leases, for L2 announcements and the operator.
//! - [`leader`]: [`leader::LeaseLeader`], operator leadership through a Lease.
//! - [`nodeconfig`]: the operator's CiliumBGPNodeConfig specs.
//! - [`run`]: `lbspeaker agent` and `lbspeaker operator`.
//!
//! See `docs/kubernetes.md`.

pub mod client;
pub mod convert;
pub mod events;
pub mod leader;
pub mod lease;
pub mod nodeconfig;
pub mod ratelimit;
pub mod run;
pub mod sink;
pub mod source;

/// Field manager of everything the agent writes (its node's CiliumBGPNodeConfig status).
pub const AGENT_MANAGER: &str = "lbspeaker-agent";

/// Field manager of everything the operator writes (Service and CRD status, node configs,
/// its Lease).
pub const OPERATOR_MANAGER: &str = "lbspeaker-operator";

/// `reportingController` of our Events.
pub const AGENT_CONTROLLER: &str = "lbspeaker.io/agent";

/// `reportingController` of the operator's Events.
pub const OPERATOR_CONTROLLER: &str = "lbspeaker.io/operator";

/// The operator's Lease (in the lbspeaker namespace).
pub const OPERATOR_LEASE: &str = "lbspeaker-operator";

/// The namespace leases and the operator's Events go to unless told otherwise (Cilium's:
/// its L2 leases live there, where users look for them).
pub const DEFAULT_NAMESPACE: &str = "kube-system";

/// Which side of lbspeaker a client, a sink or a source serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `lbspeaker agent`: one per node.
    Agent,
    /// `lbspeaker operator`: the cluster's, one active replica.
    Operator,
}

impl Role {
    /// The field manager of its writes.
    pub fn field_manager(self) -> &'static str {
        match self {
            Role::Agent => AGENT_MANAGER,
            Role::Operator => OPERATOR_MANAGER,
        }
    }

    /// `agent` or `operator`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Operator => "operator",
        }
    }

    /// The `User-Agent` of its requests, which audit logs and the test API server's request
    /// log show: `lbspeaker-agent/0.1.0 (node1)`.
    pub fn user_agent(self, instance: &str) -> String {
        format!(
            "lbspeaker-{}/{} ({instance})",
            self.name(),
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// How long to wait before trying again after the `n`-th failure in a row: 100 ms doubling,
/// at most `max`, with up to a quarter of jitter so that many nodes do not retry in step.
pub(crate) fn backoff(n: u32, max: std::time::Duration) -> std::time::Duration {
    let base = std::time::Duration::from_millis(100)
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(max);
    let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_a_tenth_of_a_second_up_to_its_bound() {
        let max = Duration::from_secs(5);
        for (n, want) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (5, 3200),
            (6, 5000),
            (40, 5000),
        ] {
            let d = backoff(n, max);
            let want = Duration::from_millis(want);
            assert!(d >= want && d <= want.mul_f64(1.25), "{n}: {d:?}");
        }
    }

    #[test]
    fn user_agents_name_the_role_and_the_instance() {
        assert!(
            Role::Agent
                .user_agent("node1")
                .starts_with("lbspeaker-agent/")
        );
        assert!(Role::Operator.user_agent("op-0").ends_with("(op-0)"));
    }
}
