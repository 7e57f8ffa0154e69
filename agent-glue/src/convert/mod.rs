//! `lbspeaker convert metallb FILE...`: MetalLB manifests in, the equivalent `cilium.io`
//! manifests out, with a warning for everything that does not map one to one.
//!
//! | MetalLB | becomes |
//! |---|---|
//! | `IPAddressPool` | `CiliumLoadBalancerIPPool` (CIDRs and ranges as blocks; `avoidBuggyIPs` as `allowFirstLastIPs: No`; `serviceAllocation` as a `serviceSelector`) |
//! | `BGPPeer` | a peer of the `metallb` `CiliumBGPClusterConfig` (one instance per `myASN`) and a `CiliumBGPPeerConfig` of the same name (timers, port, multihop, graceful restart, password as a Secret in `kube-system`) |
//! | `BGPAdvertisement` | `CiliumBGPAdvertisement` of type `Service` / `LoadBalancerIP` (aggregation, local preference, communities with `Community` aliases resolved), selected by the peer configs of the peers it names |
//! | `L2Advertisement` | `CiliumL2AnnouncementPolicy` (`loadBalancerIPs: true`, interfaces as anchored regular expressions) |
//! | `Community` | resolved into the advertisements that use its aliases |
//! | `BFDProfile` | lbspeaker's `BFDProfile` (`lbspeaker.io/v1alpha1`, same field names), named by the `lbspeaker.io/bfd-profile` annotation of the peer configs whose peers used it |
//!
//! The conversion is pure: files' text in, objects and warnings out ([`convert`]); the CLI
//! prints the objects as YAML on stdout and the warnings on stderr.

pub mod metallb;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crds::bgp::{
    AdvertisementType, BgpAdvertisement as CiliumAdvertisement, BgpAttributes, BgpCommunities,
    BgpServiceOptions, CiliumBGPAdvertisement, CiliumBGPAdvertisementSpec, CiliumBGPClusterConfig,
    CiliumBGPClusterConfigSpec, CiliumBGPFamilyWithAdverts, CiliumBGPInstance, CiliumBGPPeer,
    CiliumBGPPeerConfig, CiliumBGPPeerConfigSpec, GracefulRestart, PeerConfigReference,
    ServiceAddressType, Timers, Transport, WellKnownCommunity,
};
use crds::l2::{CiliumL2AnnouncementPolicy, CiliumL2AnnouncementPolicySpec};
use crds::lbpool::v2::{CiliumLoadBalancerIPPool, CiliumLoadBalancerIPPoolSpec};
use crds::lbpool::{AllowFirstLastIps, IpBlock};
use crds::manifest::split_documents;
use crds::validate::Validate;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use serde_json::Value;

use metallb::{
    BgpAdvertisement, BgpPeer, Community, IpAddressPool, L2Advertisement, Other, parse_duration_ms,
};

/// The label each converted advertisement carries, so that peer configs select by it.
pub const ADVERTISEMENT_LABEL: &str = "lbspeaker.io/metallb-advertisement";
/// The name of the cluster config the BGP peers go into.
pub const CLUSTER_CONFIG_NAME: &str = "metallb";
/// Where Cilium (and lbspeaker) look for BGP password Secrets.
pub const BGP_SECRETS_NAMESPACE: &str = "kube-system";
/// The annotation naming a BFD profile on a peer config.
pub use crds::bfd::BFD_PROFILE_ANNOTATION;

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where it came from, for messages.
    pub origin: String,
    /// Its text.
    pub text: String,
}

/// Something that did not map one to one (a warning) or could not be read (an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `file` or `file document N`.
    pub origin: String,
    /// `Kind/name` of the MetalLB object, when known.
    pub object: String,
    /// What happened and what to do.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.object, self.message)
        }
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The cilium.io (and core) objects, in the order they should be applied.
    pub objects: Vec<Value>,
    /// What did not map one to one.
    pub warnings: Vec<Note>,
    /// What could not be read or converted at all.
    pub errors: Vec<Note>,
}

impl Conversion {
    /// The objects as one multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            out.push_str("---\n");
            match serde_saphyr::to_string(o) {
                Ok(text) => out.push_str(&text),
                // A serde_json::Value always serializes; keep the JSON form rather than lose it.
                Err(_) => {
                    out.push_str(&o.to_string());
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// A MetalLB object read from the input, with where it came from.
struct Read<T> {
    origin: String,
    object: T,
}

#[derive(Default)]
struct Inputs {
    pools: Vec<Read<IpAddressPool>>,
    peers: Vec<Read<BgpPeer>>,
    bgp_ads: Vec<Read<BgpAdvertisement>>,
    l2_ads: Vec<Read<L2Advertisement>>,
    communities: Vec<Read<Community>>,
    bfd_profiles: Vec<Read<metallb::BfdProfile>>,
}

/// Converts MetalLB manifests.
pub fn convert(inputs: &[Input]) -> Conversion {
    let mut conv = Conversion::default();
    let read = read_inputs(inputs, &mut conv);
    let aliases = community_aliases(&read.communities, &mut conv);
    for p in &read.pools {
        convert_pool(p, &mut conv);
    }
    convert_bgp(&read, &aliases, &mut conv);
    for a in &read.l2_ads {
        convert_l2(a, &read.pools, &mut conv);
    }
    for b in &read.bfd_profiles {
        convert_bfd_profile(b, &mut conv);
    }
    conv
}

fn note(origin: &str, kind: &str, name: &str, message: impl Into<String>) -> Note {
    Note {
        origin: origin.to_owned(),
        object: format!("{kind}/{name}"),
        message: message.into(),
    }
}

fn read_inputs(inputs: &[Input], conv: &mut Conversion) -> Inputs {
    let mut read = Inputs::default();
    for input in inputs {
        for doc in split_documents(&input.text) {
            let origin = format!("{} document {}", input.origin, doc.number);
            let meta = match doc.type_meta() {
                Ok(m) => m,
                Err(e) => {
                    conv.errors.push(Note {
                        origin: input.origin.clone(),
                        object: String::new(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let group = meta.api_version.split('/').next().unwrap_or_default();
            if group != "metallb.io" {
                let what = if meta.kind == "ConfigMap" {
                    "a ConfigMap (MetalLB before 0.13 was configured with one): convert it to \
                     MetalLB's custom resources first, then run this again"
                        .to_owned()
                } else {
                    format!(
                        "{} {} is not a MetalLB resource: skipped",
                        meta.api_version, meta.kind
                    )
                };
                conv.warnings.push(Note {
                    origin,
                    object: String::new(),
                    message: what,
                });
                continue;
            }
            macro_rules! take {
                ($list:expr) => {
                    match doc.parse() {
                        Ok(object) => $list.push(Read {
                            origin: origin.clone(),
                            object,
                        }),
                        Err(e) => conv.errors.push(Note {
                            origin: input.origin.clone(),
                            object: meta.kind.clone(),
                            message: e.to_string(),
                        }),
                    }
                };
            }
            match meta.kind.as_str() {
                "IPAddressPool" => take!(read.pools),
                "BGPPeer" => take!(read.peers),
                "BGPAdvertisement" => take!(read.bgp_ads),
                "L2Advertisement" => take!(read.l2_ads),
                "Community" => take!(read.communities),
                "BFDProfile" => take!(read.bfd_profiles),
                other => conv.warnings.push(Note {
                    origin,
                    object: other.to_owned(),
                    message: "no cilium.io equivalent: skipped".to_owned(),
                }),
            }
        }
    }
    read
}

fn community_aliases(list: &[Read<Community>], conv: &mut Conversion) -> BTreeMap<String, String> {
    let mut aliases = BTreeMap::new();
    for c in list {
        for a in &c.object.spec.communities {
            if aliases.insert(a.name.clone(), a.value.clone()).is_some() {
                conv.warnings.push(note(
                    &c.origin,
                    "Community",
                    &c.object.metadata.name,
                    format!(
                        "alias {:?} is defined more than once; the last definition wins",
                        a.name
                    ),
                ));
            }
        }
    }
    aliases
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn unknown_fields(origin: &str, kind: &str, name: &str, other: &Other, conv: &mut Conversion) {
    for field in other.keys() {
        conv.warnings.push(note(
            origin,
            kind,
            name,
            format!("spec.{field} has no equivalent and is not carried over"),
        ));
    }
}

/// Appends the object when it validates; otherwise reports why.
fn push_valid<T>(origin: &str, kind: &str, name: &str, object: T, conv: &mut Conversion)
where
    T: Validate + kube::Resource + serde::Serialize,
    <T as kube::Resource>::DynamicType: Default,
{
    if let Err(e) = object.validate() {
        conv.errors.push(note(
            origin,
            kind,
            name,
            format!("the converted object is not valid, so it is left out: {e}"),
        ));
        return;
    }
    match serde_json::to_value(&object) {
        Ok(v) => conv.objects.push(v),
        Err(e) => conv.errors.push(note(origin, kind, name, e.to_string())),
    }
}

fn convert_pool(p: &Read<IpAddressPool>, conv: &mut Conversion) {
    let name = &p.object.metadata.name;
    let spec = &p.object.spec;
    let warn = |conv: &mut Conversion, m: String| {
        conv.warnings
            .push(note(&p.origin, "IPAddressPool", name, m));
    };
    let mut blocks = Vec::new();
    for a in &spec.addresses {
        let a = a.trim();
        if let Some((start, stop)) = a.split_once('-') {
            blocks.push(IpBlock {
                cidr: None,
                start: Some(start.trim().to_owned()),
                stop: Some(stop.trim().to_owned()),
            });
        } else if a.contains('/') {
            blocks.push(IpBlock {
                cidr: Some(a.to_owned()),
                start: None,
                stop: None,
            });
        } else {
            blocks.push(IpBlock {
                cidr: None,
                start: Some(a.to_owned()),
                stop: None,
            });
        }
    }
    let mut allow_first_last = None;
    if spec.avoid_buggy_ips == Some(true) {
        allow_first_last = Some(AllowFirstLastIps::No);
        if blocks.iter().any(|b| {
            b.cidr
                .as_deref()
                .and_then(|c| c.parse::<ipnet::IpNet>().ok())
                .is_some_and(|n| matches!(n, ipnet::IpNet::V4(v4) if v4.prefix_len() < 24))
                || b.start.is_some()
        }) {
            warn(
                conv,
                "avoidBuggyIPs skips every .0 and .255 address; allowFirstLastIPs: No only \
                 reserves the first and last address of each CIDR block (ranges keep theirs)"
                    .into(),
            );
        }
    }
    if spec.auto_assign == Some(false) {
        warn(
            conv,
            "autoAssign: false has no equivalent: services matching the pool's selector get \
             addresses from it without asking; give the pool a serviceSelector that only the \
             intended services match"
                .into(),
        );
    }
    let service_selector = spec
        .service_allocation
        .as_ref()
        .and_then(|sa| pool_service_selector(sa, &mut |m| warn(conv, m)));
    unknown_fields(&p.origin, "IPAddressPool", name, &spec.other, conv);
    let pool = CiliumLoadBalancerIPPool::new(
        name,
        CiliumLoadBalancerIPPoolSpec {
            blocks,
            service_selector,
            allow_first_last_ips: allow_first_last,
            disabled: false,
        },
    );
    push_valid(&p.origin, "IPAddressPool", name, pool, conv);
}

/// `serviceAllocation` as one service selector (namespaces through the pseudo-label).
fn pool_service_selector(
    sa: &metallb::ServiceAllocation,
    warn: &mut dyn FnMut(String),
) -> Option<LabelSelector> {
    if sa.priority.is_some() {
        warn(
            "serviceAllocation.priority is not carried over: among several matching pools \
             lbspeaker prefers pools with a serviceSelector, then the first by name \
             (docs/lbipam.md)"
                .into(),
        );
    }
    if !sa.namespace_selectors.is_empty() {
        warn(
            "serviceAllocation.namespaceSelectors cannot be expressed (a pool selects services \
             by their labels and namespace name, not by namespace labels): list the namespaces \
             in serviceAllocation.namespaces instead"
                .into(),
        );
    }
    let mut selector = match sa.service_selectors.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, ..] => {
            warn(
                "serviceAllocation.serviceSelectors has several selectors (any of them); a \
                 Cilium pool has one: only the first is kept"
                    .into(),
            );
            Some(first.clone())
        }
    };
    if !sa.namespaces.is_empty() {
        let s = selector.get_or_insert_with(LabelSelector::default);
        s.match_expressions
            .get_or_insert_with(Vec::new)
            .push(LabelSelectorRequirement {
                key: crds::selector::SERVICE_NAMESPACE_LABEL.to_owned(),
                operator: "In".to_owned(),
                values: Some(sa.namespaces.clone()),
            });
    }
    selector
}

/// Warns when an advertisement or L2 policy is limited to some pools: Cilium selects services by
/// label, not by the pool their address came from.
fn pools_restriction_warning(
    pools: &[String],
    pool_selectors: &[LabelSelector],
    all_pools: &[Read<IpAddressPool>],
) -> Option<String> {
    let every: BTreeSet<&str> = all_pools
        .iter()
        .map(|p| p.object.metadata.name.as_str())
        .collect();
    let named: BTreeSet<&str> = pools.iter().map(String::as_str).collect();
    if pool_selectors.is_empty() && (named.is_empty() || named == every) {
        return None;
    }
    let which = if pool_selectors.is_empty() {
        format!("pools {}", pools.join(", "))
    } else {
        "the pools its ipAddressPoolSelectors match".to_owned()
    };
    Some(format!(
        "is limited to {which}; a cilium.io policy selects services by their labels, not by the \
         pool their address came from, so this one applies to every LoadBalancer service: \
         narrow its selector to the services of those pools"
    ))
}

fn single_selector(
    selectors: &[LabelSelector],
    what: &str,
    warn: &mut dyn FnMut(String),
) -> Option<LabelSelector> {
    match selectors {
        [] => None,
        [one] => Some(one.clone()),
        [first, ..] => {
            warn(format!(
                "{what} has several selectors (any of them); only the first is kept"
            ));
            Some(first.clone())
        }
    }
}

fn seconds(field: &str, value: &Option<String>, warn: &mut dyn FnMut(String)) -> Option<i32> {
    let text = value.as_deref()?;
    let Some(ms) = parse_duration_ms(text) else {
        warn(format!(
            "{field} {text:?} is not a duration (like 90s or 1m30s): not carried over"
        ));
        return None;
    };
    let secs = ms.div_ceil(1000);
    if ms % 1000 != 0 {
        warn(format!(
            "{field} {text:?} is rounded up to {secs} s (timers are whole seconds)"
        ));
    }
    i32::try_from(secs).ok()
}

/// The peers' graceful restart, timers, ... and the advertisements each receives.
fn convert_bgp(read: &Inputs, aliases: &BTreeMap<String, String>, conv: &mut Conversion) {
    // Which advertisements each peer receives (an advertisement without `peers` goes to all).
    let mut ads_of_peer: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in &read.bgp_ads {
        let name = a.object.metadata.name.clone();
        let targets: Vec<&str> = if a.object.spec.peers.is_empty() {
            read.peers
                .iter()
                .map(|p| p.object.metadata.name.as_str())
                .collect()
        } else {
            a.object.spec.peers.iter().map(String::as_str).collect()
        };
        for t in targets {
            if !read.peers.iter().any(|p| p.object.metadata.name == t) {
                conv.warnings.push(note(
                    &a.origin,
                    "BGPAdvertisement",
                    &name,
                    format!("names peer {t:?}, which is not among the inputs"),
                ));
            }
            ads_of_peer.entry(t).or_default().push(name.clone());
        }
    }

    for a in &read.bgp_ads {
        convert_bgp_advertisement(a, aliases, &read.pools, conv);
    }

    let mut instances: BTreeMap<i64, Vec<CiliumBGPPeer>> = BTreeMap::new();
    let mut node_selectors: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for p in &read.peers {
        let name = p.object.metadata.name.as_str();
        let key = serde_json::to_string(&p.object.spec.node_selectors).unwrap_or_default();
        node_selectors.entry(key).or_default().push(name);
        let ads = ads_of_peer.get(name).cloned().unwrap_or_default();
        if let Some((asn, peer)) = convert_peer(p, ads, conv) {
            instances.entry(asn).or_default().push(peer);
        }
    }
    if instances.is_empty() {
        return;
    }
    let origin = read
        .peers
        .first()
        .map(|p| p.origin.clone())
        .unwrap_or_default();
    let node_selector = if node_selectors.len() == 1 {
        read.peers.first().and_then(|p| {
            single_selector(&p.object.spec.node_selectors, "nodeSelectors", &mut |m| {
                conv.warnings
                    .push(note(&origin, "BGPPeer", &p.object.metadata.name, m));
            })
        })
    } else {
        conv.warnings.push(Note {
            origin: origin.clone(),
            object: String::new(),
            message: "the BGPPeers select different nodes; one CiliumBGPClusterConfig selects \
                      the same nodes for all its peers, so the converted one selects every \
                      node: split it into one ClusterConfig per node group (each node may be \
                      selected by one only)"
                .to_owned(),
        });
        None
    };
    if instances.len() > 1 {
        conv.warnings.push(Note {
            origin: origin.clone(),
            object: String::new(),
            message: format!(
                "the BGPPeers use {} local ASNs; each becomes a BGP instance of its own on every \
                 selected node",
                instances.len()
            ),
        });
    }
    let cluster = CiliumBGPClusterConfig::new(
        CLUSTER_CONFIG_NAME,
        CiliumBGPClusterConfigSpec {
            node_selector,
            bgp_instances: instances
                .into_iter()
                .map(|(asn, peers)| CiliumBGPInstance {
                    name: format!("instance-{asn}"),
                    local_asn: Some(asn),
                    local_port: None,
                    peers,
                })
                .collect(),
        },
    );
    push_valid(&origin, "BGPPeer", "(all)", cluster, conv);
}

/// One BGPPeer: its CiliumBGPPeerConfig (pushed, with a Secret for a clear-text password) and
/// its entry in the cluster config, under its local AS.
fn convert_peer(
    p: &Read<BgpPeer>,
    ads: Vec<String>,
    conv: &mut Conversion,
) -> Option<(i64, CiliumBGPPeer)> {
    let name = p.object.metadata.name.as_str();
    let spec = &p.object.spec;
    let origin = &p.origin;
    let mut warnings = Vec::new();
    let mut warn = |m: String| warnings.push(m);
    let Some(my_asn) = spec.my_asn else {
        conv.errors.push(note(
            origin,
            "BGPPeer",
            name,
            "spec.myASN is missing: skipped",
        ));
        return None;
    };
    let peer_asn = match (spec.peer_asn, spec.dynamic_asn.as_deref()) {
        (Some(asn), _) => asn,
        (None, Some(kind)) => {
            warn(format!(
                "dynamicASN {kind:?} becomes peerASN 0 (accept any AS the peer announces), \
                 which does not check that the session is {kind}"
            ));
            0
        }
        (None, None) => {
            warn("neither peerASN nor dynamicASN: peerASN 0 accepts any AS".into());
            0
        }
    };
    if spec.router_id.is_some() {
        warn(
            "routerID is per node in cilium.io: set it with a CiliumBGPNodeConfigOverride \
             for each node (routerID)"
                .into(),
        );
    }
    if spec.source_address.is_some() {
        warn(
            "sourceAddress is per node in cilium.io: set it with a \
             CiliumBGPNodeConfigOverride (peers[].localAddress)"
                .into(),
        );
    }
    let timers = Timers {
        connect_retry_time_seconds: seconds("connectTime", &spec.connect_time, &mut warn),
        hold_time_seconds: seconds("holdTime", &spec.hold_time, &mut warn),
        keep_alive_time_seconds: seconds("keepaliveTime", &spec.keepalive_time, &mut warn),
    };
    let mut timers = timers;
    if let (Some(hold), None) = (timers.hold_time_seconds, timers.keep_alive_time_seconds) {
        // MetalLB (through FRR) keeps alive at a third of the hold time; Cilium's default
        // of 30 s would exceed a shorter hold time.
        timers.keep_alive_time_seconds = Some((hold / 3).max(1));
    }
    let timers = (timers != Timers::default()).then_some(timers);
    let transport = spec
        .peer_port
        .filter(|port| *port != 179)
        .map(|port| Transport {
            peer_port: i32::try_from(port).ok(),
        });
    let auth_secret_ref = match (&spec.password, &spec.password_secret) {
        (Some(pw), secret) => {
            if secret.is_some() {
                warn("both password and passwordSecret: the password is used".into());
            }
            let secret_name = format!("{name}-bgp-password");
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name.clone()),
                    namespace: Some(BGP_SECRETS_NAMESPACE.to_owned()),
                    ..ObjectMeta::default()
                },
                string_data: Some([("password".to_owned(), pw.clone())].into()),
                type_: Some("Opaque".to_owned()),
                ..Secret::default()
            };
            match serde_json::to_value(&secret) {
                Ok(mut v) => {
                    v["apiVersion"] = "v1".into();
                    v["kind"] = "Secret".into();
                    conv.objects.push(v);
                }
                Err(e) => warn(format!("the password Secret could not be written: {e}")),
            }
            Some(secret_name)
        }
        (None, Some(s)) => {
            let ns = s.namespace.as_deref().unwrap_or("metallb-system");
            if ns != BGP_SECRETS_NAMESPACE {
                warn(format!(
                    "passwordSecret {ns}/{}: copy that Secret into {BGP_SECRETS_NAMESPACE} \
                     (the BGP secrets namespace); its key `password` is used",
                    s.name
                ));
            }
            Some(s.name.clone())
        }
        (None, None) => None,
    };
    let mut peer_meta = meta(name);
    if let Some(bfd) = &spec.bfd_profile {
        peer_meta.annotations = Some([(BFD_PROFILE_ANNOTATION.to_owned(), bfd.clone())].into());
    }
    let advertisements = (!ads.is_empty()).then(|| LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: ADVERTISEMENT_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(ads),
        }]),
        match_labels: None,
    });
    if advertisements.is_none() {
        warn("no BGPAdvertisement applies to this peer: it is sent nothing".into());
    }
    let families = [crds::bgp::Afi::Ipv4, crds::bgp::Afi::Ipv6]
        .into_iter()
        .map(|afi| CiliumBGPFamilyWithAdverts {
            afi,
            safi: crds::bgp::Safi::Unicast,
            advertisements: advertisements.clone(),
        })
        .collect();
    let peer_config = CiliumBGPPeerConfig {
        metadata: peer_meta,
        spec: CiliumBGPPeerConfigSpec {
            transport,
            timers,
            auth_secret_ref,
            graceful_restart: (spec.enable_graceful_restart == Some(true)).then_some(
                GracefulRestart {
                    enabled: true,
                    restart_time_seconds: None,
                },
            ),
            ebgp_multihop: (spec.ebgp_multi_hop == Some(true)).then_some(255),
            families: Some(families),
        },
        status: None,
    };
    for field in spec.other.keys() {
        let why = match field.as_str() {
            "vrf" => "VRFs are not supported",
            "disableMP" => "lbspeaker negotiates both families on one session",
            _ => "no equivalent",
        };
        warn(format!("spec.{field} is not carried over: {why}"));
    }
    for w in warnings {
        conv.warnings.push(note(origin, "BGPPeer", name, w));
    }
    push_valid(origin, "BGPPeer", name, peer_config, conv);
    let peer = CiliumBGPPeer {
        name: name.to_owned(),
        peer_address: spec.peer_address.clone(),
        peer_asn: Some(peer_asn),
        auto_discovery: None,
        peer_config_ref: Some(PeerConfigReference {
            group: None,
            kind: None,
            name: name.to_owned(),
        }),
    };
    Some((my_asn, peer))
}

/// A community as MetalLB writes it (`a:b`, `large:a:b:c`, or an alias), into the advertisement's
/// communities.
fn add_community(
    text: &str,
    aliases: &BTreeMap<String, String>,
    into: &mut BgpCommunities,
) -> Result<(), String> {
    let value = aliases.get(text).map(String::as_str).unwrap_or(text);
    if let Some(large) = value.strip_prefix("large:") {
        bgp::speaker::parse_large_community(large).map_err(|e| e.to_string())?;
        into.large.push(large.to_owned());
        return Ok(());
    }
    let c = bgp::speaker::parse_community(value).map_err(|e| {
        if aliases.contains_key(text) {
            format!("alias {text:?} = {value:?}: {e}")
        } else {
            format!("{e} (or the name of a Community alias)")
        }
    })?;
    let well_known = [
        WellKnownCommunity::NoExport,
        WellKnownCommunity::NoAdvertise,
        WellKnownCommunity::NoExportSubconfed,
        WellKnownCommunity::NoPeer,
        WellKnownCommunity::Blackhole,
        WellKnownCommunity::LlgrStale,
        WellKnownCommunity::NoLlgr,
        WellKnownCommunity::AcceptOwn,
        WellKnownCommunity::PlannedShut,
    ]
    .into_iter()
    .find(|w| w.value() == c.0);
    match well_known {
        Some(w) => into.well_known.push(w),
        None => into
            .standard
            .push(format!("{}:{}", c.0 >> 16, c.0 & 0xffff)),
    }
    Ok(())
}

fn convert_bgp_advertisement(
    a: &Read<BgpAdvertisement>,
    aliases: &BTreeMap<String, String>,
    pools: &[Read<IpAddressPool>],
    conv: &mut Conversion,
) {
    let name = &a.object.metadata.name;
    let spec = &a.object.spec;
    let mut warnings = Vec::new();
    if let Some(w) = pools_restriction_warning(
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
        pools,
    ) {
        warnings.push(w);
    }
    if !spec.node_selectors.is_empty() {
        warnings.push(
            "nodeSelectors cannot be expressed on an advertisement: every node of the cluster \
             config advertises it; use a separate CiliumBGPClusterConfig for those nodes"
                .to_owned(),
        );
    }
    let mut communities = BgpCommunities::default();
    for c in &spec.communities {
        if let Err(e) = add_community(c, aliases, &mut communities) {
            warnings.push(format!("community {c:?} is left out: {e}"));
        }
    }
    let has_communities = !(communities.standard.is_empty()
        && communities.well_known.is_empty()
        && communities.large.is_empty());
    if spec.local_pref.is_some() {
        warnings.push("localPref is sent to internal (iBGP) peers only, as in MetalLB".to_owned());
    }
    let attributes = (has_communities || spec.local_pref.is_some()).then(|| BgpAttributes {
        communities: has_communities.then_some(communities),
        local_preference: spec.local_pref,
    });
    let agg4 = spec
        .aggregation_length
        .filter(|l| *l != 32)
        .and_then(|l| i16::try_from(l).ok());
    let agg6 = spec
        .aggregation_length_v6
        .filter(|l| *l != 128)
        .and_then(|l| i16::try_from(l).ok());
    unknown_fields(&a.origin, "BGPAdvertisement", name, &spec.other, conv);
    for w in warnings {
        conv.warnings
            .push(note(&a.origin, "BGPAdvertisement", name, w));
    }
    let mut m = meta(name);
    m.labels = Some([(ADVERTISEMENT_LABEL.to_owned(), name.clone())].into());
    let advert = CiliumBGPAdvertisement {
        metadata: m,
        spec: CiliumBGPAdvertisementSpec {
            advertisements: vec![CiliumAdvertisement {
                advertisement_type: AdvertisementType::Service,
                service: Some(BgpServiceOptions {
                    addresses: vec![ServiceAddressType::LoadBalancerIP],
                    aggregation_length_ipv4: agg4,
                    aggregation_length_ipv6: agg6,
                }),
                interface: None,
                // An empty selector selects every service (nil would select none).
                selector: Some(LabelSelector::default()),
                attributes,
            }],
        },
    };
    push_valid(&a.origin, "BGPAdvertisement", name, advert, conv);
}

fn convert_l2(a: &Read<L2Advertisement>, pools: &[Read<IpAddressPool>], conv: &mut Conversion) {
    let name = &a.object.metadata.name;
    let spec = &a.object.spec;
    let mut warnings = Vec::new();
    if let Some(w) = pools_restriction_warning(
        &spec.ip_address_pools,
        &spec.ip_address_pool_selectors,
        pools,
    ) {
        warnings.push(w);
    }
    let node_selector = single_selector(&spec.node_selectors, "nodeSelectors", &mut |m| {
        warnings.push(m)
    });
    let interfaces = (!spec.interfaces.is_empty()).then(|| {
        spec.interfaces
            .iter()
            .map(|i| format!("^{}$", regex::escape(i)))
            .collect()
    });
    unknown_fields(&a.origin, "L2Advertisement", name, &spec.other, conv);
    for w in warnings {
        conv.warnings
            .push(note(&a.origin, "L2Advertisement", name, w));
    }
    let policy = CiliumL2AnnouncementPolicy::new(
        name,
        CiliumL2AnnouncementPolicySpec {
            node_selector,
            service_selector: None,
            load_balancer_ips: Some(true),
            external_ips: Some(false),
            interfaces,
        },
    );
    push_valid(&a.origin, "L2Advertisement", name, policy, conv);
}

fn convert_bfd_profile(b: &Read<metallb::BfdProfile>, conv: &mut Conversion) {
    let name = &b.object.metadata.name;
    let spec = &b.object.spec;
    let mut warnings = Vec::new();
    if spec.echo_mode == Some(true) {
        warnings.push("echoMode: lbspeaker runs no BFD Echo function; it is left off".to_owned());
    }
    for field in spec.other.keys() {
        warnings.push(format!(
            "spec.{field} has no equivalent and is not carried over"
        ));
    }
    for w in warnings {
        conv.warnings.push(note(&b.origin, "BFDProfile", name, w));
    }
    let profile = crds::bfd::BFDProfile::new(
        name,
        crds::bfd::BFDProfileSpec {
            transmit_interval: spec.transmit_interval,
            receive_interval: spec.receive_interval,
            detect_multiplier: spec.detect_multiplier,
            echo_mode: None,
            passive_mode: spec.passive_mode,
            damping: None,
        },
    );
    push_valid(&b.origin, "BFDProfile", name, profile, conv);
}
