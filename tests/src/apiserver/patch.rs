//! The four PATCH content types. JSON patch (RFC 6902, with `test`) and merge patch
//! (RFC 7386) are exact, through the `json-patch` crate. Strategic merge patch is a merge
//! patch that also understands its directives (`$patch`, `$retainKeys`,
//! `$setElementOrder/`, `$deleteFromPrimitiveList/`) and merges the lists kubectl merges by
//! key for the built-in types (conditions by `type`, Service ports by `port`, ...); other lists
//! are replaced. Server-side apply is a merge patch plus field ownership (see `fields`).

use serde_json::{Map, Value};

use super::error::ApiError;

/// A PATCH request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// What a type accepts, for the 415 message.
    pub fn accepted(custom: bool) -> Vec<&'static str> {
        let mut v = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        if !custom {
            v.push("application/strategic-merge-patch+json");
        }
        v
    }
}

/// A request body as JSON; YAML is accepted too (apply bodies may be YAML).
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::bad_request("the request body is neither JSON nor UTF-8 YAML")
            })?;
            serde_saphyr::from_str::<Value>(text).map_err(|yaml_err| {
                ApiError::bad_request(format!(
                    "error decoding the request body: as JSON: {json_err}; as YAML: {yaml_err}"
                ))
            })
        }
    }
}

/// The patched document, or the 422 kube-apiserver answers a patch that does not apply.
pub fn apply(kind: PatchType, doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut out = doc.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(out)
        }
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut out = doc.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic => {
            let Value::Object(p) = patch else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            let mut out = doc.clone();
            strategic(&mut out, p, &mut Vec::new());
            Ok(out)
        }
    }
}

/// How a list merges in a strategic merge patch.
enum ListMerge {
    Key(String),
    Set,
}

/// The merge keys of the built-in types' lists, by path (list elements add no segment).
fn known_merge(path: &[String]) -> Option<ListMerge> {
    let last = path.last()?.as_str();
    let parent = path
        .len()
        .checked_sub(2)
        .and_then(|i| path.get(i))
        .map(String::as_str);
    let key = |k: &str| Some(ListMerge::Key(k.to_string()));
    match (parent, last) {
        (_, "conditions") => key("type"),
        (Some("metadata"), "ownerReferences") => key("uid"),
        (Some("metadata"), "finalizers") => Some(ListMerge::Set),
        (Some("status"), "addresses") => key("type"),
        (Some("spec"), "ports") if path.len() == 2 => key("port"),
        (Some("containers" | "initContainers" | "ephemeralContainers"), "ports") => {
            key("containerPort")
        }
        (
            _,
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "volumes"
            | "imagePullSecrets",
        ) => key("name"),
        (_, "volumeMounts") => key("mountPath"),
        _ => None,
    }
}

fn strategic(target: &mut Value, patch: &Map<String, Value>, path: &mut Vec<String>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip(&Value::Object(patch.clone()));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), v.as_array().cloned().unwrap_or_default()));
        } else if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = target.get_mut(field) {
                list.retain(|x| !gone.contains(x));
            }
        }
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        let Some(t) = target.as_object_mut() else {
            return;
        };
        path.push(k.clone());
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(pm) if pm.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(pm) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic(slot, pm, path);
            }
            Value::Array(items) => {
                let order = orders
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, o)| o.as_slice());
                let how = known_merge(path).or_else(|| inferred_merge(items, order));
                let merged = match (how, t.get(k)) {
                    (Some(ListMerge::Key(key)), Some(Value::Array(cur))) => {
                        merge_by_key(cur, items, &key, path)
                    }
                    (Some(ListMerge::Set), Some(Value::Array(cur))) => {
                        let mut out = cur.clone();
                        for i in items {
                            if !out.contains(i) {
                                out.push(i.clone());
                            }
                        }
                        out
                    }
                    _ => items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .map(strip)
                        .collect(),
                };
                let merged = match order {
                    Some(o) => reorder(merged, o),
                    None => merged,
                };
                t.insert(k.clone(), Value::Array(merged));
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
        path.pop();
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys")
        && let Some(t) = target.as_object_mut()
    {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
}

/// A merge key the patch itself reveals: `$setElementOrder` entries carry only the key.
fn inferred_merge(items: &[Value], order: Option<&[Value]>) -> Option<ListMerge> {
    let order = order?;
    match order.first() {
        Some(Value::Object(m)) if m.len() == 1 => {
            m.keys().next().map(|k| ListMerge::Key(k.clone()))
        }
        Some(v) if !v.is_object() && items.iter().all(|i| !i.is_object()) => Some(ListMerge::Set),
        _ => None,
    }
}

fn merge_by_key(cur: &[Value], items: &[Value], key: &str, path: &mut Vec<String>) -> Vec<Value> {
    let mut out: Vec<Value> = cur.to_vec();
    for item in items {
        let Some(id) = item.get(key) else {
            out.push(strip(item));
            continue;
        };
        let pos = out.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete, item.as_object()) {
            (Some(i), true, _) => {
                out.remove(i);
            }
            (None, true, _) => {}
            (Some(i), false, Some(pm)) => {
                if let Some(slot) = out.get_mut(i) {
                    strategic(slot, pm, path);
                }
            }
            _ => out.push(strip(item)),
        }
    }
    out
}

/// Elements in the order the patch gives, then any it does not mention.
fn reorder(list: Vec<Value>, order: &[Value]) -> Vec<Value> {
    let mut rest = list;
    let mut out = Vec::with_capacity(rest.len());
    for o in order {
        let pos = rest.iter().position(|e| match o {
            Value::Object(m) => m.iter().all(|(k, v)| e.get(k) == Some(v)),
            other => e == other,
        });
        if let Some(p) = pos {
            out.push(rest.remove(p));
        }
    }
    out.extend(rest);
    out
}

/// A value with every `$` directive removed, for parts of a patch stored as they are.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_json_patch_test_is_a_422_and_changes_nothing() {
        let doc = json!({"spec": {"holderIdentity": "a"}});
        let p = json!([{"op": "test", "path": "/spec/holderIdentity", "value": "b"},
                       {"op": "replace", "path": "/spec/holderIdentity", "value": "c"}]);
        let e = apply(PatchType::Json, &doc, &p).unwrap_err();
        assert_eq!(e.code, 422);
        let ok = json!([{"op": "test", "path": "/spec/holderIdentity", "value": "a"},
                        {"op": "replace", "path": "/spec/holderIdentity", "value": "c"}]);
        assert_eq!(
            apply(PatchType::Json, &doc, &ok).unwrap()["spec"]["holderIdentity"],
            "c"
        );
    }

    #[test]
    fn a_merge_patch_null_deletes_and_lists_are_replaced() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [{"port": 1}, {"port": 2}]}});
        let p = json!({"metadata": {"labels": {"a": null}}, "spec": {"ports": [{"port": 3}]}});
        let out = apply(PatchType::Merge, &doc, &p).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [{"port": 3}]}})
        );
    }

    #[test]
    fn a_strategic_patch_merges_service_ports_by_port_in_the_given_order() {
        let doc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let p = json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                                "ports": [{"port": 443, "targetPort": 8443}]}});
        let out = apply(PatchType::Strategic, &doc, &p).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 443, "name": "https", "targetPort": 8443},
                                                {"port": 80, "name": "http"}])
        );
    }

    #[test]
    fn a_strategic_patch_deletes_list_elements_and_primitive_values() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        let p = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                       "status": {"conditions": [{"type": "X", "$patch": "delete"}, {"type": "Ready", "status": "False"}]}});
        let out = apply(PatchType::Strategic, &doc, &p).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "False"}])
        );
    }

    #[test]
    fn a_list_without_a_merge_key_is_replaced_by_a_strategic_patch() {
        let doc = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
        let p = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}]}}});
        let out = apply(PatchType::Strategic, &doc, &p).unwrap();
        assert_eq!(
            out["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.2"}])
        );
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let v = parse_body(b"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n").unwrap();
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(parse_body(b"{\"a\": 1}").unwrap()["a"], 1);
        assert_eq!(parse_body(b"{{{").unwrap_err().code, 400);
    }
}
