//! One object of any kind lbspeaker reads, and how a manifest document becomes one.

use std::fmt;

use crds::bgp::{
    CiliumBGPAdvertisement, CiliumBGPClusterConfig, CiliumBGPNodeConfig,
    CiliumBGPNodeConfigOverride, CiliumBGPPeerConfig,
};
use crds::l2::CiliumL2AnnouncementPolicy;
use crds::lbpool::{CiliumLoadBalancerIPPool, v2alpha1};
use crds::manifest::{Document, TypeMeta};
use crds::podippool::CiliumPodIPPool;
use crds::validate::Validate;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::status::StatusPayload;

/// The kinds a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `cilium.io/v2` CiliumBGPClusterConfig.
    BgpClusterConfig,
    /// `cilium.io/v2` CiliumBGPPeerConfig.
    BgpPeerConfig,
    /// `cilium.io/v2` CiliumBGPAdvertisement.
    BgpAdvertisement,
    /// `cilium.io/v2` CiliumBGPNodeConfig.
    BgpNodeConfig,
    /// `cilium.io/v2` CiliumBGPNodeConfigOverride.
    BgpNodeConfigOverride,
    /// `cilium.io/v2` (or v2alpha1) CiliumLoadBalancerIPPool.
    LbIpPool,
    /// `cilium.io/v2alpha1` CiliumL2AnnouncementPolicy.
    L2AnnouncementPolicy,
    /// `cilium.io/v2alpha1` CiliumPodIPPool.
    PodIpPool,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Node.
    Node,
    /// `v1` Secret.
    Secret,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::BgpClusterConfig,
        Kind::BgpPeerConfig,
        Kind::BgpAdvertisement,
        Kind::BgpNodeConfig,
        Kind::BgpNodeConfigOverride,
        Kind::LbIpPool,
        Kind::L2AnnouncementPolicy,
        Kind::PodIpPool,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::Secret,
    ];

    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::BgpClusterConfig => "CiliumBGPClusterConfig",
            Kind::BgpPeerConfig => "CiliumBGPPeerConfig",
            Kind::BgpAdvertisement => "CiliumBGPAdvertisement",
            Kind::BgpNodeConfig => "CiliumBGPNodeConfig",
            Kind::BgpNodeConfigOverride => "CiliumBGPNodeConfigOverride",
            Kind::LbIpPool => "CiliumLoadBalancerIPPool",
            Kind::L2AnnouncementPolicy => "CiliumL2AnnouncementPolicy",
            Kind::PodIpPool => "CiliumPodIPPool",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Node => "Node",
            Kind::Secret => "Secret",
        }
    }

    /// The `apiVersion` objects of this kind are served as.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::L2AnnouncementPolicy | Kind::PodIpPool => "cilium.io/v2alpha1",
            Kind::Service | Kind::Node | Kind::Secret => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            _ => "cilium.io/v2",
        }
    }

    /// The resource's plural: the directory its status files live in.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::BgpClusterConfig => "ciliumbgpclusterconfigs",
            Kind::BgpPeerConfig => "ciliumbgppeerconfigs",
            Kind::BgpAdvertisement => "ciliumbgpadvertisements",
            Kind::BgpNodeConfig => "ciliumbgpnodeconfigs",
            Kind::BgpNodeConfigOverride => "ciliumbgpnodeconfigoverrides",
            Kind::LbIpPool => "ciliumloadbalancerippools",
            Kind::L2AnnouncementPolicy => "ciliuml2announcementpolicies",
            Kind::PodIpPool => "ciliumpodippools",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Node => "nodes",
            Kind::Secret => "secrets",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(self, Kind::Service | Kind::EndpointSlice | Kind::Secret)
    }

    /// Whether lbspeaker writes status for this kind (so a status record can exist).
    pub fn has_status(self) -> bool {
        !matches!(
            self,
            Kind::BgpAdvertisement
                | Kind::BgpNodeConfigOverride
                | Kind::PodIpPool
                | Kind::EndpointSlice
                | Kind::Node
                | Kind::Secret
        )
    }

    /// The kind for a plural, when it is one of ours.
    pub fn from_plural(p: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == p)
    }

    /// The kind a document declares, accepting the versions lbspeaker reads: v2 and v2alpha1
    /// for every `cilium.io` kind (v2alpha1 BGP manifests of Cilium 1.16 have the same fields).
    pub fn of(tm: &TypeMeta) -> Option<Kind> {
        let k = Kind::ALL.into_iter().find(|k| k.name() == tm.kind)?;
        let ok = match k {
            Kind::Service | Kind::Node | Kind::Secret => tm.api_version == "v1",
            Kind::EndpointSlice => tm.api_version == "discovery.k8s.io/v1",
            _ => matches!(
                tm.api_version.as_str(),
                "cilium.io/v2" | "cilium.io/v2alpha1"
            ),
        };
        ok.then_some(k)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A cluster-scoped key.
    pub fn cluster(name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: None,
            name: name.into(),
        }
    }

    /// A namespaced key.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One object.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Object {
    BgpClusterConfig(CiliumBGPClusterConfig),
    BgpPeerConfig(CiliumBGPPeerConfig),
    BgpAdvertisement(CiliumBGPAdvertisement),
    BgpNodeConfig(CiliumBGPNodeConfig),
    BgpNodeConfigOverride(CiliumBGPNodeConfigOverride),
    LbIpPool(CiliumLoadBalancerIPPool),
    L2AnnouncementPolicy(CiliumL2AnnouncementPolicy),
    PodIpPool(CiliumPodIPPool),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Node(Node),
    Secret(Secret),
}

macro_rules! each {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            Object::BgpClusterConfig($o) => $e,
            Object::BgpPeerConfig($o) => $e,
            Object::BgpAdvertisement($o) => $e,
            Object::BgpNodeConfig($o) => $e,
            Object::BgpNodeConfigOverride($o) => $e,
            Object::LbIpPool($o) => $e,
            Object::L2AnnouncementPolicy($o) => $e,
            Object::PodIpPool($o) => $e,
            Object::Service($o) => $e,
            Object::EndpointSlice($o) => $e,
            Object::Node($o) => $e,
            Object::Secret($o) => $e,
        }
    };
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::BgpClusterConfig(_) => Kind::BgpClusterConfig,
            Object::BgpPeerConfig(_) => Kind::BgpPeerConfig,
            Object::BgpAdvertisement(_) => Kind::BgpAdvertisement,
            Object::BgpNodeConfig(_) => Kind::BgpNodeConfig,
            Object::BgpNodeConfigOverride(_) => Kind::BgpNodeConfigOverride,
            Object::LbIpPool(_) => Kind::LbIpPool,
            Object::L2AnnouncementPolicy(_) => Kind::L2AnnouncementPolicy,
            Object::PodIpPool(_) => Kind::PodIpPool,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Node(_) => Kind::Node,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    /// Its metadata, mutably.
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    /// Its key (namespace dropped for cluster-scoped kinds).
    pub fn key(&self) -> ObjectKey {
        let m = self.meta();
        ObjectKey {
            namespace: if self.kind().namespaced() {
                Some(m.namespace.clone().unwrap_or_else(|| "default".into()))
            } else {
                None
            },
            name: m.name.clone().unwrap_or_default(),
        }
    }

    /// Sets the status part of the object (an API server keeps status apart from the spec a
    /// user applies). A payload of another kind changes nothing.
    pub fn set_status(&mut self, payload: &StatusPayload) {
        use crds::bgp::{CiliumBGPClusterConfigStatus, CiliumBGPPeerConfigStatus};
        use crds::l2::CiliumL2AnnouncementPolicyStatus;
        use crds::lbpool::CiliumLoadBalancerIPPoolStatus;
        match (self, payload) {
            (Object::Service(a), StatusPayload::Service(st)) => a.status = st.clone(),
            (Object::LbIpPool(a), StatusPayload::Conditions(c)) => {
                a.status = c
                    .clone()
                    .map(|conditions| CiliumLoadBalancerIPPoolStatus { conditions })
            }
            (Object::BgpClusterConfig(a), StatusPayload::Conditions(c)) => {
                a.status = c
                    .clone()
                    .map(|conditions| CiliumBGPClusterConfigStatus { conditions })
            }
            (Object::BgpPeerConfig(a), StatusPayload::Conditions(c)) => {
                a.status = c
                    .clone()
                    .map(|conditions| CiliumBGPPeerConfigStatus { conditions })
            }
            (Object::L2AnnouncementPolicy(a), StatusPayload::Conditions(c)) => {
                a.status = c
                    .clone()
                    .map(|conditions| CiliumL2AnnouncementPolicyStatus { conditions })
            }
            (Object::BgpNodeConfig(a), StatusPayload::BgpNodeConfig(b)) => {
                a.status = b.status.clone()
            }
            _ => {}
        }
    }

    /// Brings a freshly read object to what an API server would store: namespace defaulted
    /// (or dropped for cluster-scoped kinds), the served apiVersion, Secret `stringData`
    /// folded into `data`.
    pub(crate) fn normalize(&mut self) {
        let kind = self.kind();
        let meta = self.meta_mut();
        if kind.namespaced() {
            meta.namespace.get_or_insert_with(|| "default".to_string());
        } else {
            meta.namespace = None;
        }
        if let Object::Secret(s) = self
            && let Some(strings) = s.string_data.take()
        {
            let data = s.data.get_or_insert_with(Default::default);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let r = match self {
            Object::BgpClusterConfig(o) => o.validate(),
            Object::BgpPeerConfig(o) => o.validate(),
            Object::BgpAdvertisement(o) => o.validate(),
            Object::BgpNodeConfig(o) => o.validate(),
            Object::BgpNodeConfigOverride(o) => o.validate(),
            Object::LbIpPool(o) => o.validate(),
            Object::L2AnnouncementPolicy(o) => o.validate(),
            Object::PodIpPool(o) => o.validate(),
            Object::Service(_) | Object::EndpointSlice(_) | Object::Node(_) | Object::Secret(_) => {
                Ok(())
            }
        };
        r.map_err(|e| e.to_string())
    }
}

/// The identity of a document that may not parse as a whole, to know which object it held.
#[derive(Deserialize)]
struct Ident {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: IdentMeta,
}

#[derive(Deserialize, Default)]
struct IdentMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Which object a document declares (kind and key), even when the rest of it is invalid.
pub(crate) fn identify(doc: &Document<'_>) -> Option<(Kind, ObjectKey)> {
    let id: Ident = doc.parse().ok()?;
    let kind = Kind::of(&TypeMeta {
        api_version: id.api_version,
        kind: id.kind,
    })?;
    let name = id.metadata.name?;
    let namespace = kind
        .namespaced()
        .then(|| id.metadata.namespace.unwrap_or_else(|| "default".into()));
    Some((kind, ObjectKey { namespace, name }))
}

/// Parses one manifest document. `Ok(None)`: a kind lbspeaker does not read (a Deployment,
/// a ConfigMap), to be ignored. `Err`: the document declares a kind lbspeaker reads (or any
/// `cilium.io` kind) and is invalid; the message names the object, the field and the rule.
pub fn parse_document(doc: &Document<'_>) -> Result<Option<Object>, String> {
    let tm = doc.type_meta().map_err(|e| e.to_string())?;
    let Some(kind) = Kind::of(&tm) else {
        if tm.api_version.starts_with("cilium.io/") {
            return Err(format!(
                "document {} (from line {}): {} {} is not a kind lbspeaker reads",
                doc.number, doc.first_line, tm.api_version, tm.kind
            ));
        }
        return Ok(None);
    };
    let p = |e: crds::manifest::DocumentError| e.to_string();
    let mut obj = match kind {
        Kind::BgpClusterConfig => Object::BgpClusterConfig(doc.parse().map_err(p)?),
        Kind::BgpPeerConfig => Object::BgpPeerConfig(doc.parse().map_err(p)?),
        Kind::BgpAdvertisement => Object::BgpAdvertisement(doc.parse().map_err(p)?),
        Kind::BgpNodeConfig => Object::BgpNodeConfig(doc.parse().map_err(p)?),
        Kind::BgpNodeConfigOverride => Object::BgpNodeConfigOverride(doc.parse().map_err(p)?),
        Kind::LbIpPool if tm.api_version == "cilium.io/v2alpha1" => {
            let old: v2alpha1::CiliumLoadBalancerIPPool = doc.parse().map_err(p)?;
            Object::LbIpPool(old.into())
        }
        Kind::LbIpPool => Object::LbIpPool(doc.parse().map_err(p)?),
        Kind::L2AnnouncementPolicy => Object::L2AnnouncementPolicy(doc.parse().map_err(p)?),
        Kind::PodIpPool => Object::PodIpPool(doc.parse().map_err(p)?),
        Kind::Service => Object::Service(doc.parse().map_err(p)?),
        Kind::EndpointSlice => Object::EndpointSlice(doc.parse().map_err(p)?),
        Kind::Node => Object::Node(doc.parse().map_err(p)?),
        Kind::Secret => Object::Secret(doc.parse().map_err(p)?),
    };
    obj.normalize();
    let name_ok = obj
        .meta()
        .name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..");
    if !name_ok {
        return Err(format!(
            "document {} (from line {}): {kind}: metadata.name must be set to a valid name",
            doc.number, doc.first_line
        ));
    }
    obj.validate().map_err(|e| {
        format!(
            "document {} (from line {}): {e}",
            doc.number, doc.first_line
        )
    })?;
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::manifest::split_documents;

    fn one(text: &str) -> Result<Option<Object>, String> {
        parse_document(&split_documents(text)[0])
    }

    #[test]
    fn kinds_of_other_groups_are_ignored_but_unknown_cilium_kinds_are_reported() {
        assert_eq!(
            one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"),
            Ok(None)
        );
        let e = one("apiVersion: cilium.io/v2\nkind: CiliumBGPPeerconfig\nmetadata: {name: x}\n")
            .unwrap_err();
        assert!(
            e.contains("cilium.io/v2 CiliumBGPPeerconfig is not a kind lbspeaker reads"),
            "{e}"
        );
    }

    #[test]
    fn invalid_objects_are_reported_with_object_path_and_rule() {
        let e = one(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: cilium-peer}\n\
             spec:\n  timers: {holdTimeSeconds: 9}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "document 1 (from line 1): CiliumBGPPeerConfig cilium-peer: spec.timers.keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9)"
        );
    }

    #[test]
    fn namespaces_default_for_namespaced_kinds_and_drop_for_cluster_scoped_ones() {
        let s = one(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer}\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.key(), ObjectKey::namespaced("default", "web"));
        let p = one(
            "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\n\
             metadata: {name: p, namespace: x}\nspec: {blocks: [{cidr: 10.0.0.0/24}]}\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.key(), ObjectKey::cluster("p"));
        let Object::LbIpPool(pool) = p else { panic!() };
        assert_eq!(
            serde_json::to_value(&pool).unwrap()["apiVersion"],
            "cilium.io/v2"
        );
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let s = one(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth, namespace: kube-system}\n\
             stringData: {password: s3cret}\n",
        )
        .unwrap()
        .unwrap();
        let Object::Secret(s) = s else { panic!() };
        assert_eq!(s.data.unwrap()["password"].0, b"s3cret");
    }

    #[test]
    fn cilium_1_16_v2alpha1_bgp_manifests_are_read_into_the_v2_types() {
        let o = one(
            "apiVersion: cilium.io/v2alpha1\nkind: CiliumBGPClusterConfig\nmetadata: {name: c}\n\
             spec:\n  bgpInstances:\n  - name: i\n    localASN: 65001\n    peers:\n    - name: p\n\
             \x20     peerAddress: fd00:10::1\n      peerConfigRef: {group: cilium.io, kind: CiliumBGPPeerConfig, name: x}\n",
        )
        .unwrap()
        .unwrap();
        let Object::BgpClusterConfig(c) = o else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap()["apiVersion"],
            "cilium.io/v2"
        );
        let r = c.spec.bgp_instances[0].peers[0]
            .peer_config_ref
            .as_ref()
            .unwrap();
        assert_eq!((r.group(), r.name.as_str()), ("cilium.io", "x"));
    }

    #[test]
    fn objects_need_a_name() {
        let e = one("apiVersion: v1\nkind: Node\nmetadata: {}\n").unwrap_err();
        assert!(e.contains("metadata.name"), "{e}");
    }

    #[test]
    fn a_broken_document_still_says_which_object_it_declares() {
        let docs = split_documents(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod}\nspec: {ports: 7}\n",
        );
        assert!(parse_document(&docs[0]).is_err());
        assert_eq!(
            identify(&docs[0]),
            Some((Kind::Service, ObjectKey::namespaced("prod", "web")))
        );
    }
}
