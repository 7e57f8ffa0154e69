//! API objects into the snapshot's [`Object`]s.
//!
//! Watchers receive [`DynamicObject`]s and each is converted here on its own, so one object
//! that does not decode (a field of a newer Cilium, a broken `kubectl edit`) is reported and
//! skipped instead of failing the whole watch. Objects are normalised and validated exactly as
//! the directory source does with manifests; what lbspeaker never reads is dropped to save
//! memory (managed fields, `last-applied-configuration`, Secret keys other than `password`).

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use crate::source::{Kind, Object};

/// The annotation kubectl's client-side apply leaves behind: a copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The resource lbspeaker watches for a kind, in the version it reads.
pub fn api_resource(kind: Kind) -> ApiResource {
    let (group, version) = match kind.api_version().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", kind.api_version()),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.name()),
        kind.plural(),
    )
}

/// Converts a watched object of `kind`. `Err`: why it is not usable, naming the object.
pub fn to_object(kind: Kind, obj: DynamicObject) -> Result<Object, String> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let what = match &obj.metadata.namespace {
        Some(ns) if kind.namespaced() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    };
    let mut v = serde_json::to_value(&obj).map_err(|e| format!("{what}: {e}"))?;
    if let Value::Object(m) = &mut v {
        m.insert("apiVersion".into(), Value::from(kind.api_version()));
        m.insert("kind".into(), Value::from(kind.name()));
    }
    let from = |e: serde_json::Error| format!("{what}: {e}");
    let mut o = match kind {
        Kind::BgpClusterConfig => {
            Object::BgpClusterConfig(serde_json::from_value(v).map_err(from)?)
        }
        Kind::BgpPeerConfig => Object::BgpPeerConfig(serde_json::from_value(v).map_err(from)?),
        Kind::BgpAdvertisement => {
            Object::BgpAdvertisement(serde_json::from_value(v).map_err(from)?)
        }
        Kind::BgpNodeConfig => Object::BgpNodeConfig(serde_json::from_value(v).map_err(from)?),
        Kind::BgpNodeConfigOverride => {
            Object::BgpNodeConfigOverride(serde_json::from_value(v).map_err(from)?)
        }
        Kind::LbIpPool => Object::LbIpPool(serde_json::from_value(v).map_err(from)?),
        Kind::L2AnnouncementPolicy => {
            Object::L2AnnouncementPolicy(serde_json::from_value(v).map_err(from)?)
        }
        Kind::PodIpPool => Object::PodIpPool(serde_json::from_value(v).map_err(from)?),
        Kind::Service => Object::Service(serde_json::from_value(v).map_err(from)?),
        Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_value(v).map_err(from)?),
        Kind::Node => Object::Node(serde_json::from_value(v).map_err(from)?),
        Kind::Secret => Object::Secret(serde_json::from_value(v).map_err(from)?),
    };
    o.normalize();
    trim(&mut o);
    o.validate()?;
    Ok(o)
}

/// Drops what no reconciler reads.
fn trim(o: &mut Object) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    if let Object::Secret(s) = o {
        s.string_data = None;
        if let Some(d) = s.data.as_mut() {
            d.retain(|k, _| k == crate::bgp::reconcile::PASSWORD_KEY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resources_are_named_as_the_api_server_serves_them() {
        let r = api_resource(Kind::LbIpPool);
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.plural.as_str()),
            ("cilium.io", "v2", "ciliumloadbalancerippools")
        );
        let r = api_resource(Kind::EndpointSlice);
        assert_eq!(r.api_version, "discovery.k8s.io/v1");
        let r = api_resource(Kind::Service);
        assert_eq!((r.group.as_str(), r.api_version.as_str()), ("", "v1"));
        assert_eq!(api_resource(Kind::L2AnnouncementPolicy).version, "v2alpha1");
    }

    #[test]
    fn an_object_is_validated_as_a_manifest_would_be() {
        let bad = dynamic(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPPeerConfig",
            "metadata": {"name": "p"},
            "spec": {"timers": {"holdTimeSeconds": 9}}
        }));
        let e = to_object(Kind::BgpPeerConfig, bad).unwrap_err();
        assert!(
            e.contains("keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9)"),
            "{e}"
        );
        let undecodable = dynamic(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPPeerConfig",
            "metadata": {"name": "q"}, "spec": {"timers": "soon"}
        }));
        let e = to_object(Kind::BgpPeerConfig, undecodable).unwrap_err();
        assert!(e.starts_with("CiliumBGPPeerConfig q: "), "{e}");
    }

    #[test]
    fn what_no_reconciler_reads_is_dropped() {
        let s = dynamic(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bgp", "namespace": "kube-system",
                         "managedFields": [{"manager": "kubectl"}],
                         "annotations": {LAST_APPLIED: "{...}"}},
            "data": {"password": "czNjcmV0", "other": "eA=="}
        }));
        let Object::Secret(s) = to_object(Kind::Secret, s).unwrap() else {
            panic!()
        };
        assert!(s.metadata.managed_fields.is_none() && s.metadata.annotations.is_none());
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["password"]);
        assert_eq!(data["password"].0, b"s3cret");
    }

    #[test]
    fn a_list_item_without_type_fields_still_converts() {
        let svc = dynamic(json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"type": "LoadBalancer"}
        }));
        let o = to_object(Kind::Service, svc).unwrap();
        assert_eq!(o.key().to_string(), "prod/web");
    }
}
