//! The desired state the dataplane is asked to hold: plain data, independent of Kubernetes.
//! The daemon's reconciler builds it from Services and EndpointSlices; [`crate::Dataplane`]
//! makes the maps match it with the fewest operations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use crate::maps::Protocol;

/// A frontend's identity: the address, port and protocol packets arrive for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FrontendKey {
    /// The LoadBalancer (or external, cluster) address.
    pub address: IpAddr,
    /// The service port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl std::fmt::Display for FrontendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.protocol),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.protocol),
        }
    }
}

/// What kind of service address a frontend is (shown by `lb list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ServiceKind {
    /// `status.loadBalancer.ingress[].ip`.
    #[default]
    LoadBalancer,
    /// `spec.externalIPs`.
    ExternalIp,
    /// `spec.clusterIP(s)`.
    ClusterIp,
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TrafficPolicy {
    /// Any backend; traffic to remote backends is SNATed to the node.
    #[default]
    Cluster,
    /// Local backends only, client address preserved; dropped when there is none.
    Local,
}

/// How a new flow picks its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// A random active backend.
    #[default]
    Random,
    /// Maglev consistent hashing of the flow's tuple: every node picks the same backend for a
    /// flow, and a backend change moves few flows.
    Maglev,
}

/// A backend's state, as EndpointSlice conditions give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum BackendState {
    /// Ready: gets new flows.
    #[default]
    Active,
    /// Terminating (or not ready but serving): keeps its flows, gets no new ones.
    Terminating,
}

/// One backend of a frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BackendKey {
    /// The endpoint address (same family as the frontend).
    pub address: IpAddr,
    /// The target port.
    pub port: u16,
}

/// A backend and what the dataplane needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backend {
    /// The endpoint address (same family as the frontend).
    pub address: IpAddr,
    /// The target port.
    pub port: u16,
    /// Active or terminating.
    #[serde(default)]
    pub state: BackendState,
    /// Whether it runs on this node (reached without SNAT; the only ones for `Local`).
    #[serde(default)]
    pub local: bool,
}

impl Backend {
    /// The backend's identity.
    pub fn key(&self) -> BackendKey {
        BackendKey {
            address: self.address,
            port: self.port,
        }
    }
}

/// One frontend and its backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontend {
    /// Address, port and protocol.
    #[serde(flatten)]
    pub key: FrontendKey,
    /// `namespace/name` of the service, for logs (not stored in the maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// LoadBalancer, external IP or ClusterIP.
    #[serde(default)]
    pub kind: ServiceKind,
    /// `externalTrafficPolicy`.
    #[serde(default)]
    pub external_policy: TrafficPolicy,
    /// `internalTrafficPolicy` (applies to traffic from backend-facing interfaces).
    #[serde(default)]
    pub internal_policy: TrafficPolicy,
    /// Random or Maglev.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The backends, in any order.
    pub backends: Vec<Backend>,
}

impl Frontend {
    /// A LoadBalancer frontend with defaults (Cluster, random) and no backends.
    pub fn new(address: IpAddr, port: u16, protocol: Protocol) -> Frontend {
        Frontend {
            key: FrontendKey {
                address,
                port,
                protocol,
            },
            service: None,
            kind: ServiceKind::LoadBalancer,
            external_policy: TrafficPolicy::Cluster,
            internal_policy: TrafficPolicy::Cluster,
            algorithm: Algorithm::Random,
            backends: Vec::new(),
        }
    }

    /// Adds a backend (builder style).
    pub fn backend(mut self, address: IpAddr, port: u16, local: bool) -> Frontend {
        self.backends.push(Backend {
            address,
            port,
            state: BackendState::Active,
            local,
        });
        self
    }
}

/// Everything the dataplane should forward: frontends by key (a list of frontends in JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Frontend>", into = "Vec<Frontend>")]
pub struct DesiredState {
    /// Frontends by address, port and protocol.
    pub frontends: BTreeMap<FrontendKey, Frontend>,
}

impl DesiredState {
    /// An empty state.
    pub fn new() -> DesiredState {
        DesiredState::default()
    }

    /// Adds or replaces a frontend.
    pub fn insert(&mut self, frontend: Frontend) {
        self.frontends.insert(frontend.key, frontend);
    }

    /// From a list of frontends (a later duplicate replaces an earlier one).
    pub fn from_frontends(frontends: impl IntoIterator<Item = Frontend>) -> DesiredState {
        let mut s = DesiredState::new();
        for f in frontends {
            s.insert(f);
        }
        s
    }
}

impl From<Vec<Frontend>> for DesiredState {
    fn from(v: Vec<Frontend>) -> DesiredState {
        DesiredState::from_frontends(v)
    }
}

impl From<DesiredState> for Vec<Frontend> {
    fn from(s: DesiredState) -> Vec<Frontend> {
        s.frontends.into_values().collect()
    }
}

/// Why a desired frontend cannot be programmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An IPv4 frontend with an IPv6 backend or the other way round.
    #[error("frontend {frontend}: backend {backend} is of the other address family")]
    MixedFamilies {
        /// The frontend.
        frontend: FrontendKey,
        /// The backend address.
        backend: IpAddr,
    },
    /// Port 0 for a frontend or a backend.
    #[error("frontend {frontend}: port 0 is not a valid {what} port")]
    ZeroPort {
        /// The frontend.
        frontend: FrontendKey,
        /// "frontend" or "backend".
        what: &'static str,
    },
    /// An unspecified, multicast or loopback frontend address.
    #[error("frontend {frontend}: {address} cannot be a service address")]
    BadAddress {
        /// The frontend.
        frontend: FrontendKey,
        /// The address.
        address: IpAddr,
    },
    /// More backends than slots.
    #[error("frontend {frontend}: {count} backends, at most {max}")]
    TooManyBackends {
        /// The frontend.
        frontend: FrontendKey,
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The most backends one frontend may have (slots are 16 bits, slot 0 is the frontend).
pub const MAX_BACKENDS_PER_FRONTEND: usize = 65534;

impl Frontend {
    /// Checks what the maps cannot represent.
    pub fn validate(&self) -> Result<(), ModelError> {
        let frontend = self.key;
        let a = self.key.address;
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            return Err(ModelError::BadAddress {
                frontend,
                address: a,
            });
        }
        if self.key.port == 0 {
            return Err(ModelError::ZeroPort {
                frontend,
                what: "frontend",
            });
        }
        if self.backends.len() > MAX_BACKENDS_PER_FRONTEND {
            return Err(ModelError::TooManyBackends {
                frontend,
                count: self.backends.len(),
                max: MAX_BACKENDS_PER_FRONTEND,
            });
        }
        for b in &self.backends {
            if b.address.is_ipv4() != a.is_ipv4() {
                return Err(ModelError::MixedFamilies {
                    frontend,
                    backend: b.address,
                });
            }
            if b.port == 0 {
                return Err(ModelError::ZeroPort {
                    frontend,
                    what: "backend",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe() -> Frontend {
        Frontend::new("172.16.1.1".parse().unwrap(), 80, Protocol::Tcp)
    }

    #[test]
    fn a_frontend_with_backends_of_its_family_is_valid() {
        assert_eq!(
            fe().backend("10.0.0.1".parse().unwrap(), 8080, true)
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn mixed_families_are_rejected() {
        let f = fe().backend("fd00::1".parse().unwrap(), 8080, true);
        assert!(matches!(
            f.validate(),
            Err(ModelError::MixedFamilies { .. })
        ));
    }

    #[test]
    fn port_zero_and_loopback_frontends_are_rejected() {
        let mut f = fe();
        f.key.port = 0;
        assert!(matches!(f.validate(), Err(ModelError::ZeroPort { .. })));
        let f = Frontend::new("127.0.0.1".parse().unwrap(), 80, Protocol::Tcp);
        assert!(matches!(f.validate(), Err(ModelError::BadAddress { .. })));
    }

    #[test]
    fn desired_state_reads_from_json_with_defaults() {
        let s: DesiredState = serde_json::from_str(
            r#"[{"address":"172.16.1.1","port":80,"protocol":"TCP",
                 "backends":[{"address":"10.0.0.1","port":8080}]}]"#,
        )
        .unwrap();
        let f = s.frontends.values().next().unwrap();
        assert_eq!(f.external_policy, TrafficPolicy::Cluster);
        assert_eq!(f.backends[0].state, BackendState::Active);
        assert!(!f.backends[0].local);
        let back: DesiredState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
