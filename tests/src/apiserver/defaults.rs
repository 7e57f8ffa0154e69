//! Defaulting and allocation kube-apiserver does for Services (and Secrets' `stringData`), so the objects clients read
//! back look like a cluster's: type, session affinity, port protocol and target port, a
//! cluster IP from 10.96.0.0/16 (or kept when given), IP family fields, node ports from
//! 30000-32767 for NodePort and LoadBalancer services, traffic policies, and an empty
//! `status.loadBalancer`. An update that leaves out allocated values keeps them; changing
//! a cluster IP once set is refused (422), as it is immutable.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::registry::ResourceType;
use super::store::State;

pub fn apply(
    state: &State,
    rt: &ResourceType,
    current: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if rt.group.is_empty() && rt.plural == "services" {
        service(state, current, obj)?;
    }
    if rt.group.is_empty() && rt.plural == "secrets" {
        secret(obj);
    }
    Ok(())
}

/// A Secret's `stringData` goes into `data` (base64) and is not stored; `type` defaults to
/// `Opaque`.
fn secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    if m.get("type").is_none_or(|t| t.is_null() || t == "") {
        m.insert("type".into(), json!("Opaque"));
    }
    let Some(Value::Object(plain)) = m.remove("stringData") else {
        return;
    };
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), json!({}));
    }
    if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in plain {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let encoded = serde_json::to_value(k8s_openapi::ByteString(text.into_bytes()))
                .unwrap_or(Value::Null);
            data.insert(k, encoded);
        }
    }
}

fn service(state: &State, current: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = obj.pointer("/metadata/uid").cloned();
    let (used_ips, used_ports) = allocated(state, uid.as_ref());
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let old = current.and_then(|c| c.get("spec"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec.insert("type".into(), json!(ty));
    set_default(spec, "sessionAffinity", json!("None"));
    if ty == "ExternalName" {
        return Ok(());
    }

    // Cluster IP: kept from the stored object, or given, or allocated.
    let old_ip = old
        .and_then(|o| o.get("clusterIP"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let given = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ip = match (old_ip, given) {
        (Some(o), Some(g)) if o != g => {
            return Err(ApiError::invalid(
                "Service",
                "",
                &name,
                &[(
                    "spec.clusterIPs[0]".into(),
                    format!("Invalid value: []string{{\"{g}\"}}: may not change once set"),
                )],
            ));
        }
        (Some(o), _) => o.to_string(),
        (None, Some(g)) => g,
        (None, None) => {
            next_ip(&used_ips).ok_or_else(|| ApiError::internal("the service IP range is full"))?
        }
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));

    let external = ty == "NodePort" || ty == "LoadBalancer";
    if external {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let node_ports = external
        && (ty != "LoadBalancer"
            || spec
                .get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false));
    let old_ports: Vec<Value> = old
        .and_then(|o| o.get("ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut taken = used_ports;
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports
            .iter()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        {
            taken.insert(p);
        }
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
            if node_ports && p.get("nodePort").is_none() {
                let same = old_ports.iter().find(|o| {
                    o.get("port") == p.get("port")
                        && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                            == p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                });
                let np = match same.and_then(|o| o.get("nodePort")).and_then(Value::as_u64) {
                    Some(np) => np,
                    None => (30000..=32767)
                        .find(|n| !taken.contains(n))
                        .ok_or_else(|| ApiError::internal("the node port range is full"))?,
                };
                taken.insert(np);
                p.insert("nodePort".into(), json!(np));
            }
        }
    }
    if obj.pointer("/status/loadBalancer").is_none() {
        match obj.get_mut("status").and_then(Value::as_object_mut) {
            Some(s) => {
                s.insert("loadBalancer".into(), json!({}));
            }
            None => obj["status"] = json!({"loadBalancer": {}}),
        }
    }
    Ok(())
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), v);
    }
}

/// Cluster IPs and node ports other Services hold.
fn allocated(state: &State, except_uid: Option<&Value>) -> (BTreeSet<String>, BTreeSet<u64>) {
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for s in state.list(&(String::new(), "services".into()), None) {
        if except_uid.is_some() && s.pointer("/metadata/uid") == except_uid {
            continue;
        }
        if let Some(ip) = s.pointer("/spec/clusterIP").and_then(Value::as_str) {
            ips.insert(ip.to_string());
        }
        for p in s
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                ports.insert(np);
            }
        }
    }
    (ips, ports)
}

/// The first free address in 10.96.0.0/16 after 10.96.0.1 (the `kubernetes` service's).
fn next_ip(used: &BTreeSet<String>) -> Option<String> {
    (2u32..65_535)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i).to_string())
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;

    fn rt() -> ResourceType {
        Registry::builtin().get("", "services").unwrap().clone()
    }

    #[test]
    fn a_load_balancer_service_gets_an_ip_node_ports_and_defaults() {
        let state = State::new(Registry::builtin(), 10);
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply(&state, &rt(), None, &mut svc).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.2");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000})
        );
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn an_update_without_the_allocated_values_keeps_them() {
        let state = State::new(Registry::builtin(), 10);
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}});
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        apply(&state, &rt(), Some(&old), &mut new).unwrap();
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 31000);
    }

    #[test]
    fn changing_a_cluster_ip_is_refused() {
        let state = State::new(Registry::builtin(), 10);
        let old = json!({"spec": {"clusterIP": "10.96.0.9"}});
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.10"}});
        assert_eq!(
            apply(&state, &rt(), Some(&old), &mut new).unwrap_err().code,
            422
        );
    }

    #[test]
    fn a_secret_stores_string_data_as_base64_data() {
        let state = State::new(Registry::builtin(), 10);
        let rt = Registry::builtin().get("", "secrets").unwrap().clone();
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"password": "s3cret"}});
        apply(&state, &rt, None, &mut s).unwrap();
        assert_eq!(
            s,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"password": "czNjcmV0"}})
        );
    }

    #[test]
    fn headless_services_keep_none() {
        let state = State::new(Registry::builtin(), 10);
        let mut svc = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        apply(&state, &rt(), None, &mut svc).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "None");
    }
}
