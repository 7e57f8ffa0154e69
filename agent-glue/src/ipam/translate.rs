//! From the snapshot's CiliumLoadBalancerIPPools and Services to lbipam's plain types. Label
//! selectors are evaluated here (with `crds::selector` and the service pseudo-labels), so
//! lbipam receives for each service the pools that select it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::lbpool::CiliumLoadBalancerIPPool;
use crds::selector::{Selector, WhenNil, WithPseudoLabels};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lbipam::{Block, CrossNamespace, Families, PoolSpec, ServiceRequest};

use crate::source::{ObjectKey, Snapshot};

/// `loadBalancerClass` of the BGP control plane.
pub const CLASS_BGP: &str = "io.cilium/bgp-control-plane";
/// `loadBalancerClass` of L2 announcements.
pub const CLASS_L2: &str = "io.cilium/l2-announcer";
/// Requested addresses, comma-separated.
pub const ANNOTATION_IPS: &str = "lbipam.cilium.io/ips";
/// The older name of [`ANNOTATION_IPS`].
pub const ANNOTATION_IPS_OLD: &str = "io.cilium/lb-ipam-ips";
/// Services with the same key may share an address.
pub const ANNOTATION_SHARING_KEY: &str = "lbipam.cilium.io/sharing-key";
/// The older name of [`ANNOTATION_SHARING_KEY`].
pub const ANNOTATION_SHARING_KEY_OLD: &str = "io.cilium/lb-ipam-sharing-key";
/// Namespaces sharing is allowed with (comma-separated, or `*`).
pub const ANNOTATION_SHARING_CROSS_NAMESPACE: &str = "lbipam.cilium.io/sharing-cross-namespace";
/// The older name of [`ANNOTATION_SHARING_CROSS_NAMESPACE`].
pub const ANNOTATION_SHARING_CROSS_NAMESPACE_OLD: &str =
    "io.cilium/lb-ipam-sharing-cross-namespace";

/// Whether LB-IPAM gives this Service addresses: `type: LoadBalancer` and a class that is
/// unset, the BGP control plane's or the L2 announcer's. Other classes belong to other
/// controllers and are left alone.
pub fn manages(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && matches!(
            spec.load_balancer_class.as_deref(),
            None | Some(CLASS_BGP) | Some(CLASS_L2)
        )
}

/// lbipam's input, with the keys its indices stand for.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The pools, in key order.
    pub pools: Vec<PoolSpec>,
    /// `pools[i]`'s key.
    pub pool_keys: Vec<ObjectKey>,
    /// `pools[i]`'s selector problem (for `io.cilium/bad-service-selector`).
    pub selector_errors: Vec<Option<String>>,
    /// The services LB-IPAM manages, in key order.
    pub services: Vec<ServiceRequest>,
    /// `services[i]`'s key.
    pub service_keys: Vec<ObjectKey>,
}

/// Creation time as Unix seconds (0 when unknown, i.e. oldest).
fn created(meta: &ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second())
}

/// A pool's blocks read into lbipam's, each problem phrased with its field path.
pub fn pool_blocks(pool: &CiliumLoadBalancerIPPool) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut invalid = Vec::new();
    for (i, b) in pool.spec.blocks.iter().enumerate() {
        let p = format!("spec.blocks[{i}]");
        match (b.cidr.as_deref(), b.start.as_deref(), b.stop.as_deref()) {
            (Some(c), None, None) => match c.trim().parse::<ipnet::IpNet>() {
                Ok(net) => blocks.push(Block::Cidr(net.trunc())),
                Err(_) => invalid.push(format!("{p}.cidr ({c:?}) is not a CIDR")),
            },
            (None, Some(start), stop) => {
                let a = start.trim().parse::<IpAddr>();
                let z = stop.map(|s| s.trim().parse::<IpAddr>());
                match (a, z) {
                    (Err(_), _) => {
                        invalid.push(format!("{p}.start ({start:?}) is not an IP address"))
                    }
                    (Ok(_), Some(Err(_))) => invalid.push(format!(
                        "{p}.stop ({:?}) is not an IP address",
                        stop.unwrap_or_default()
                    )),
                    (Ok(a), Some(Ok(z))) => blocks.push(Block::Range { start: a, stop: z }),
                    (Ok(a), None) => blocks.push(Block::Range { start: a, stop: a }),
                }
            }
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                invalid.push(format!("{p} sets both cidr and start/stop"))
            }
            (None, None, Some(_)) => invalid.push(format!("{p}.stop is set without start")),
            (None, None, None) => invalid.push(format!("{p} is empty")),
        }
    }
    (blocks, invalid)
}

fn annotation<'a>(meta: &'a ObjectMeta, names: &[&str]) -> Option<&'a str> {
    let a = meta.annotations.as_ref()?;
    names.iter().find_map(|n| a.get(*n).map(String::as_str))
}

/// Requested addresses: `spec.loadBalancerIP` and both annotation names, unparsable entries
/// apart.
pub fn requested(svc: &Service) -> (Vec<IpAddr>, Vec<String>) {
    let mut entries: Vec<&str> = Vec::new();
    if let Some(ip) = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
    {
        entries.push(ip);
    }
    if let Some(a) = svc.metadata.annotations.as_ref() {
        for n in [ANNOTATION_IPS, ANNOTATION_IPS_OLD] {
            if let Some(v) = a.get(n) {
                entries.extend(v.split(','));
            }
        }
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for e in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
        match e.parse::<IpAddr>() {
            Ok(a) if !ok.contains(&a) => ok.push(a),
            Ok(_) => {}
            Err(_) => bad.push(e.to_string()),
        }
    }
    (ok, bad)
}

/// Wanted families from `ipFamilyPolicy` and `ipFamilies`: SingleStack (the default) wants the
/// first family listed (IPv4 when none is), PreferDualStack wants the families listed (both
/// when none is) and is content with one, RequireDualStack needs both.
pub fn families(svc: &Service) -> Families {
    let spec = svc.spec.as_ref();
    let listed: Vec<&str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .map(|f| f.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let has = |f: &str| listed.contains(&f);
    match spec.and_then(|s| s.ip_family_policy.as_deref()) {
        Some("RequireDualStack") => Families::REQUIRE_DUAL,
        Some("PreferDualStack") => {
            if listed.is_empty() || (has("IPv4") && has("IPv6")) {
                Families::PREFER_DUAL
            } else if has("IPv6") {
                Families::IPV6
            } else {
                Families::IPV4
            }
        }
        _ => match listed.first() {
            Some(&"IPv6") => Families::IPV6,
            _ => Families::IPV4,
        },
    }
}

/// The addresses in `status.loadBalancer.ingress` (hostnames and unparsable entries skipped).
pub fn ingress_ips(status: Option<&k8s_openapi::api::core::v1::ServiceStatus>) -> Vec<IpAddr> {
    status
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn sharing(svc: &Service) -> (Option<String>, CrossNamespace) {
    let m = &svc.metadata;
    let key = annotation(m, &[ANNOTATION_SHARING_KEY, ANNOTATION_SHARING_KEY_OLD])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from);
    let cross = match annotation(
        m,
        &[
            ANNOTATION_SHARING_CROSS_NAMESPACE,
            ANNOTATION_SHARING_CROSS_NAMESPACE_OLD,
        ],
    ) {
        None => CrossNamespace::None,
        Some(v) => {
            let list: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if list.iter().any(|n| n == "*") {
                CrossNamespace::Any
            } else if list.is_empty() {
                CrossNamespace::None
            } else {
                CrossNamespace::Some(list)
            }
        }
    };
    (key, cross)
}

/// Builds lbipam's input. `current` gives a service's addresses now (its status, or what this
/// process wrote and the source does not show yet).
pub fn translate(
    snapshot: &Snapshot,
    current: impl Fn(&ObjectKey, &Service) -> Vec<IpAddr>,
) -> Input {
    let mut input = Input::default();
    let mut selectors: Vec<Option<Selector>> = Vec::new();
    for (key, pool) in &snapshot.lb_ip_pools {
        let (blocks, invalid_blocks) = pool_blocks(pool);
        let sel =
            Selector::compile_optional(pool.spec.service_selector.as_ref(), WhenNil::Everything);
        let (catch_all, broken) = match &sel {
            Ok(s) => (s.is_everything(), None),
            Err(e) => (false, Some(e.under("spec.serviceSelector"))),
        };
        input.pools.push(PoolSpec {
            name: key.name.clone(),
            created: created(&pool.metadata),
            blocks,
            invalid_blocks,
            disabled: pool.spec.disabled,
            allow_first_last_ips: pool.spec.allow_first_last_ips(),
            catch_all,
            selector_broken: broken.is_some(),
        });
        input.pool_keys.push(key.clone());
        input.selector_errors.push(broken);
        selectors.push(sel.ok());
    }
    for (key, svc) in &snapshot.services {
        if !manages(svc) {
            continue;
        }
        let ns = key.namespace.as_deref().unwrap_or("default");
        let labels = WithPseudoLabels::service(svc.metadata.labels.as_ref(), ns, &key.name);
        let pools = selectors
            .iter()
            .enumerate()
            // A pool whose selector cannot be evaluated keeps what it holds: list it for all.
            .filter(|(_, s)| s.as_ref().is_none_or(|s| s.matches(&labels)))
            .map(|(i, _)| i)
            .collect();
        let spec = svc.spec.as_ref();
        let (requested, invalid_requests) = requested(svc);
        let (sharing_key, sharing_cross_namespace) = sharing(svc);
        let mut r = ServiceRequest::new(ns, key.name.clone(), pools);
        r.created = created(&svc.metadata);
        r.families = families(svc);
        r.requested = requested;
        r.invalid_requests = invalid_requests;
        r.sharing_key = sharing_key;
        r.sharing_cross_namespace = sharing_cross_namespace;
        r.ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        r.external_traffic_local =
            spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
        r.pod_selector = spec
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        r.current = current(key, svc);
        input.services.push(r);
        input.service_keys.push(key.clone());
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::MemoryStore;

    fn svc(yaml: &str) -> Service {
        crds::manifest::split_documents(yaml)[0].parse().unwrap()
    }

    #[test]
    fn only_load_balancer_services_of_our_classes_are_managed() {
        let mk = |t: &str, class: &str| {
            svc(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec:\n  type: {t}\n{class}"
            ))
        };
        assert!(manages(&mk("LoadBalancer", "")));
        assert!(manages(&mk(
            "LoadBalancer",
            "  loadBalancerClass: io.cilium/bgp-control-plane\n"
        )));
        assert!(manages(&mk(
            "LoadBalancer",
            "  loadBalancerClass: io.cilium/l2-announcer\n"
        )));
        assert!(!manages(&mk(
            "LoadBalancer",
            "  loadBalancerClass: metallb.io/metallb\n"
        )));
        assert!(!manages(&mk("ClusterIP", "")));
        assert!(!manages(&mk("NodePort", "")));
    }

    #[test]
    fn requests_come_from_load_balancer_ip_and_both_annotation_names() {
        let s = svc(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations:\n    \
             lbipam.cilium.io/ips: \"10.0.0.1, fd00::1,,bogus\"\n    io.cilium/lb-ipam-ips: 10.0.0.2\n\
             spec:\n  type: LoadBalancer\n  loadBalancerIP: 10.0.0.1\n",
        );
        let (ok, bad) = requested(&s);
        assert_eq!(
            ok,
            ["10.0.0.1", "fd00::1", "10.0.0.2"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert_eq!(bad, ["bogus"]);
    }

    #[test]
    fn families_follow_ip_family_policy_and_ip_families() {
        let mk = |policy: &str, fams: &str| {
            svc(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec:\n  type: LoadBalancer\n{policy}{fams}"
            ))
        };
        assert_eq!(families(&mk("", "")), Families::IPV4);
        assert_eq!(families(&mk("", "  ipFamilies: [IPv6]\n")), Families::IPV6);
        assert_eq!(
            families(&mk(
                "  ipFamilyPolicy: SingleStack\n",
                "  ipFamilies: [IPv6, IPv4]\n"
            )),
            Families::IPV6
        );
        assert_eq!(
            families(&mk("  ipFamilyPolicy: PreferDualStack\n", "")),
            Families::PREFER_DUAL
        );
        assert_eq!(
            families(&mk(
                "  ipFamilyPolicy: PreferDualStack\n",
                "  ipFamilies: [IPv4]\n"
            )),
            Families::IPV4
        );
        assert_eq!(
            families(&mk("  ipFamilyPolicy: RequireDualStack\n", "")),
            Families::REQUIRE_DUAL
        );
    }

    #[test]
    fn pool_blocks_are_read_and_each_problem_names_its_field() {
        let store = MemoryStore::new();
        let problems = store.apply_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec:\n  blocks:\n\
             \x20 - cidr: 10.0.0.7/24\n  - start: 10.0.1.1\n  - start: 10.0.2.1\n    stop: 10.0.2.9\n\
             \x20 - cidr: 10.0.0.0/33\n  - start: x\n  - {start: 10.0.3.1, stop: y}\n  - {cidr: 10.0.4.0/24, start: 10.0.4.1}\n\
             \x20 - {stop: 10.0.5.1}\n  - {}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let snap = store.snapshot();
        let pool = snap.lb_ip_pools.values().next().unwrap();
        let (blocks, invalid) = pool_blocks(pool);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            blocks,
            [
                Block::Cidr("10.0.0.0/24".parse().unwrap()),
                Block::Range {
                    start: ip("10.0.1.1"),
                    stop: ip("10.0.1.1")
                },
                Block::Range {
                    start: ip("10.0.2.1"),
                    stop: ip("10.0.2.9")
                },
            ]
        );
        assert_eq!(
            invalid,
            [
                "spec.blocks[3].cidr (\"10.0.0.0/33\") is not a CIDR",
                "spec.blocks[4].start (\"x\") is not an IP address",
                "spec.blocks[5].stop (\"y\") is not an IP address",
                "spec.blocks[6] sets both cidr and start/stop",
                "spec.blocks[7].stop is set without start",
                "spec.blocks[8] is empty",
            ]
        );
    }

    #[test]
    fn pools_select_services_by_labels_and_pseudo_labels() {
        let store = MemoryStore::new();
        store.apply_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: blue}\n\
             spec: {blocks: [{cidr: 10.0.1.0/24}], serviceSelector: {matchLabels: {color: blue}}}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: by-name}\n\
             spec:\n  blocks: [{cidr: 10.0.2.0/24}]\n  serviceSelector:\n    matchExpressions:\n\
             \x20     - {key: io.kubernetes.service.namespace, operator: In, values: [prod]}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: everyone}\n\
             spec: {blocks: [{cidr: 10.0.3.0/24}]}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: broken}\n\
             spec:\n  blocks: [{cidr: 10.0.4.0/24}]\n  serviceSelector:\n    matchExpressions: [{key: a, operator: In}]\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod, labels: {color: blue}}\nspec: {type: LoadBalancer}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: dev}\nspec: {type: LoadBalancer}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: internal, namespace: dev}\nspec: {type: ClusterIP}\n",
        );
        let input = translate(&store.snapshot(), |_, _| vec![]);
        let names: Vec<&str> = input.pool_keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["blue", "broken", "by-name", "everyone"]);
        assert_eq!(input.service_keys.len(), 2, "ClusterIP is not managed");
        let by = |n: &str| {
            let i = input.service_keys.iter().position(|k| k.name == n).unwrap();
            input.services[i].pools.clone()
        };
        assert_eq!(by("web"), [0, 1, 2, 3]);
        assert_eq!(by("db"), [1, 3]);
        assert!(input.pools[3].catch_all && !input.pools[0].catch_all);
        assert!(input.pools[1].selector_broken);
        assert_eq!(
            input.selector_errors[1].as_deref(),
            Some(
                "spec.serviceSelector.matchExpressions[0].values: must not be empty for operator In"
            )
        );
    }

    #[test]
    fn sharing_annotations_are_read_under_both_names() {
        let s = svc(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations:\n    \
             io.cilium/lb-ipam-sharing-key: dns\n    lbipam.cilium.io/sharing-cross-namespace: \"a, b\"\n\
             spec: {type: LoadBalancer}\n",
        );
        assert_eq!(
            sharing(&s),
            (
                Some("dns".into()),
                CrossNamespace::Some(vec!["a".into(), "b".into()])
            )
        );
        let any = svc(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations:\n    \
             lbipam.cilium.io/sharing-key: k\n    io.cilium/lb-ipam-sharing-cross-namespace: \"*\"\n\
             spec: {type: LoadBalancer}\n",
        );
        assert_eq!(sharing(&any), (Some("k".into()), CrossNamespace::Any));
    }
}
