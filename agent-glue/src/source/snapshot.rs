//! A snapshot of the desired world: every object by kind and key, shared (`Arc`) so that the
//! next snapshot reuses what did not change.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crds::bfd::BFDProfile;
use crds::bgp::{
    CiliumBGPAdvertisement, CiliumBGPClusterConfig, CiliumBGPNodeConfig,
    CiliumBGPNodeConfigOverride, CiliumBGPPeerConfig,
};
use crds::l2::CiliumL2AnnouncementPolicy;
use crds::lbpool::CiliumLoadBalancerIPPool;
use crds::podippool::CiliumPodIPPool;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::object::{Kind, Object, ObjectKey};

/// Objects of one kind by key.
pub type Objects<T> = BTreeMap<ObjectKey, Arc<T>>;

/// Something wrong in the desired world, reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `manifests/bgp.yaml`, `status/services/default/web.yaml`.
    pub origin: String,
    /// What, with the document, line, object, field and rule when known.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Everything lbspeaker acts on, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every snapshot a source publishes.
    pub revision: u64,
    /// The source has seen everything once (always true for the directory and memory sources).
    pub synced: bool,
    /// CiliumBGPClusterConfigs.
    pub bgp_cluster_configs: Objects<CiliumBGPClusterConfig>,
    /// CiliumBGPPeerConfigs.
    pub bgp_peer_configs: Objects<CiliumBGPPeerConfig>,
    /// CiliumBGPAdvertisements.
    pub bgp_advertisements: Objects<CiliumBGPAdvertisement>,
    /// CiliumBGPNodeConfigs.
    pub bgp_node_configs: Objects<CiliumBGPNodeConfig>,
    /// CiliumBGPNodeConfigOverrides.
    pub bgp_node_config_overrides: Objects<CiliumBGPNodeConfigOverride>,
    /// CiliumLoadBalancerIPPools (v2alpha1 ones converted to v2).
    pub lb_ip_pools: Objects<CiliumLoadBalancerIPPool>,
    /// CiliumL2AnnouncementPolicies.
    pub l2_announcement_policies: Objects<CiliumL2AnnouncementPolicy>,
    /// CiliumPodIPPools.
    pub pod_ip_pools: Objects<CiliumPodIPPool>,
    /// Services.
    pub services: Objects<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Objects<EndpointSlice>,
    /// Nodes.
    pub nodes: Objects<Node>,
    /// Secrets.
    pub secrets: Objects<Secret>,
    /// BFDProfiles (`lbspeaker.io/v1alpha1`).
    pub bfd_profiles: Objects<BFDProfile>,
    /// Status records whose object is gone, which the status writer may delete (an API server
    /// deletes status with its object; a directory keeps files until told). Empty whenever a
    /// manifest could not be read well enough to know which objects it holds.
    pub orphan_statuses: Vec<(Kind, ObjectKey)>,
    /// What the source could not read or accept, one line each.
    pub problems: Vec<Problem>,
}

impl Snapshot {
    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.bgp_cluster_configs.len()
            + self.bgp_peer_configs.len()
            + self.bgp_advertisements.len()
            + self.bgp_node_configs.len()
            + self.bgp_node_config_overrides.len()
            + self.lb_ip_pools.len()
            + self.l2_announcement_policies.len()
            + self.pod_ip_pools.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.nodes.len()
            + self.secrets.len()
            + self.bfd_profiles.len()
    }

    /// Whether it holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an object of `kind` with `key` exists.
    pub fn contains(&self, kind: Kind, key: &ObjectKey) -> bool {
        match kind {
            Kind::BgpClusterConfig => self.bgp_cluster_configs.contains_key(key),
            Kind::BgpPeerConfig => self.bgp_peer_configs.contains_key(key),
            Kind::BgpAdvertisement => self.bgp_advertisements.contains_key(key),
            Kind::BgpNodeConfig => self.bgp_node_configs.contains_key(key),
            Kind::BgpNodeConfigOverride => self.bgp_node_config_overrides.contains_key(key),
            Kind::LbIpPool => self.lb_ip_pools.contains_key(key),
            Kind::L2AnnouncementPolicy => self.l2_announcement_policies.contains_key(key),
            Kind::PodIpPool => self.pod_ip_pools.contains_key(key),
            Kind::Service => self.services.contains_key(key),
            Kind::EndpointSlice => self.endpoint_slices.contains_key(key),
            Kind::Node => self.nodes.contains_key(key),
            Kind::Secret => self.secrets.contains_key(key),
            Kind::BfdProfile => self.bfd_profiles.contains_key(key),
        }
    }

    /// Adds an object, replacing one of the same kind and key.
    pub(crate) fn insert(&mut self, obj: Object) {
        let key = obj.key();
        match obj {
            Object::BgpClusterConfig(o) => {
                self.bgp_cluster_configs.insert(key, Arc::new(o)).map(drop)
            }
            Object::BgpPeerConfig(o) => self.bgp_peer_configs.insert(key, Arc::new(o)).map(drop),
            Object::BgpAdvertisement(o) => {
                self.bgp_advertisements.insert(key, Arc::new(o)).map(drop)
            }
            Object::BgpNodeConfig(o) => self.bgp_node_configs.insert(key, Arc::new(o)).map(drop),
            Object::BgpNodeConfigOverride(o) => self
                .bgp_node_config_overrides
                .insert(key, Arc::new(o))
                .map(drop),
            Object::LbIpPool(o) => self.lb_ip_pools.insert(key, Arc::new(o)).map(drop),
            Object::L2AnnouncementPolicy(o) => self
                .l2_announcement_policies
                .insert(key, Arc::new(o))
                .map(drop),
            Object::PodIpPool(o) => self.pod_ip_pools.insert(key, Arc::new(o)).map(drop),
            Object::Service(o) => self.services.insert(key, Arc::new(o)).map(drop),
            Object::EndpointSlice(o) => self.endpoint_slices.insert(key, Arc::new(o)).map(drop),
            Object::Node(o) => self.nodes.insert(key, Arc::new(o)).map(drop),
            Object::Secret(o) => self.secrets.insert(key, Arc::new(o)).map(drop),
            Object::BfdProfile(o) => self.bfd_profiles.insert(key, Arc::new(o)).map(drop),
        };
    }
}

/// Assembles a snapshot from objects in a fixed order: the first definition of an object wins
/// and later ones are reported.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    objects: BTreeMap<(Kind, ObjectKey), (Object, String)>,
    problems: Vec<Problem>,
    orphans: Vec<(Kind, ObjectKey)>,
}

impl SnapshotBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an object read from `origin`.
    pub fn add(&mut self, obj: Object, origin: &str) {
        let id = (obj.kind(), obj.key());
        if let Some((_, first)) = self.objects.get(&id) {
            self.problems.push(Problem {
                origin: origin.to_string(),
                message: format!(
                    "{} {} is already defined in {first}; this definition is ignored",
                    id.0, id.1
                ),
            });
            return;
        }
        self.objects.insert(id, (obj, origin.to_string()));
    }

    /// Records a problem.
    pub fn problem(&mut self, origin: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            origin: origin.into(),
            message: message.into(),
        });
    }

    /// Looks up an added object.
    pub fn get_mut(&mut self, kind: Kind, key: &ObjectKey) -> Option<&mut Object> {
        self.objects.get_mut(&(kind, key.clone())).map(|(o, _)| o)
    }

    /// Whether an object was added.
    pub fn contains(&self, kind: Kind, key: &ObjectKey) -> bool {
        self.objects.contains_key(&(kind, key.clone()))
    }

    /// Records a status whose object is gone.
    pub fn orphan(&mut self, kind: Kind, key: ObjectKey) {
        self.orphans.push((kind, key));
    }

    /// Forgets the orphans recorded so far.
    pub fn clear_orphans(&mut self) {
        self.orphans.clear();
    }

    /// Every added object, for callers that fill in defaults.
    pub fn objects_mut(&mut self) -> impl Iterator<Item = &mut Object> {
        self.objects.values_mut().map(|(o, _)| o)
    }

    /// The snapshot.
    pub fn build(self, revision: u64) -> Snapshot {
        let mut s = Snapshot {
            revision,
            synced: true,
            problems: self.problems,
            orphan_statuses: self.orphans,
            ..Snapshot::default()
        };
        for (_, (obj, _)) in self.objects {
            s.insert(obj);
        }
        s
    }
}
