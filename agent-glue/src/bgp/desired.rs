//! What the BGP reconciler wants for one node: the speaker's instances, peers and routes (each
//! peer with the routes it is sent), their BFD sessions and FIB installation, the node's
//! CiliumBGPNodeConfig spec, the export policies as `lbspeaker bgp route-policies` shows them,
//! and the problems found.

use std::collections::BTreeMap;

use bgp::bfd::BfdPeer;
use bgp::speaker::{InstanceConfig, PeerConfig, Route};
use crds::bgp::CiliumBGPNodeConfigSpec;

use super::fib::FibWant;
use crate::api::PolicyView;

/// One BGP instance as the speaker should run it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredInstance {
    /// Name, AS, router ID, listening port. `restarting` and `defer_end_of_rib` are left to
    /// the apply step (they depend on the process, not on the manifests).
    pub config: InstanceConfig,
    /// The peers by name, each with `export_routes` set to exactly what it is sent.
    pub peers: BTreeMap<String, PeerConfig>,
    /// Every route the instance originates (the union of its peers' routes), sorted by
    /// prefix; the attributes are the union too (what `bgp routes available` shows).
    pub routes: Vec<Route>,
    /// BFD sessions by BGP peer name, for the peers whose CiliumBGPPeerConfig names a
    /// BFDProfile that exists and that are directly connected.
    pub bfd: BTreeMap<String, BfdPeer>,
    /// Kernel FIB installation of the received routes.
    pub fib: FibWant,
}

/// Everything one reconcile wants for this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeDesired {
    /// The node.
    pub node: String,
    /// The CiliumBGPClusterConfig that applies to the node, if one does.
    pub cluster_config: Option<String>,
    /// Instances by name.
    pub instances: BTreeMap<String, DesiredInstance>,
    /// The node's CiliumBGPNodeConfig spec; `None` when no ClusterConfig selects the node (or
    /// the Node object is unknown), and then no CiliumBGPNodeConfig should exist.
    pub spec: Option<CiliumBGPNodeConfigSpec>,
    /// The export policies, one per peer, family and advertisement.
    pub policies: Vec<PolicyView>,
    /// What could not be configured and why, one line each (the node's
    /// `cilium.io/BGPReconcileError` condition and `lbspeaker status`).
    pub errors: Vec<String>,
}

impl NodeDesired {
    /// Whether any peer has graceful restart configured (then the process restarts with the R
    /// bit and stops without Cease, so that peers keep our routes).
    pub fn graceful_restart(&self) -> bool {
        self.instances
            .values()
            .flat_map(|i| i.peers.values())
            .any(|p| p.graceful_restart.is_some())
    }
}
