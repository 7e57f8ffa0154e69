//! The OpenAPI v3 documents kubectl reads before `apply`, `create`, `replace` and `patch`:
//! it looks, per group/version, for each kind's PATCH operation (tagged with
//! `x-kubernetes-group-version-kind`) and whether it takes the `fieldValidation` parameter.
//! Finding it, kubectl leaves validation to the server instead of validating against
//! schemas itself. The documents carry no schemas: the PATCH operations do not offer
//! strategic merge patch, so kubectl computes its strategic patches from its built-in types,
//! and it validates nothing client-side. `/openapi/v2` is not served (404), which kubectl
//! tolerates.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use super::registry::{Registry, ResourceType};
use super::{ApiError, Body, error_response};

pub fn v2() -> http::Response<Body> {
    error_response(&ApiError::path_not_found())
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group/version, its URL carrying a hash of the document so
/// clients' caches notice when a CRD changes it.
pub fn v3_index(r: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in r.group_versions() {
        let Some(doc) = v3_group(r, &g, &v) else {
            continue;
        };
        let mut h = DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", h.finish())}),
        );
    }
    json!({"paths": paths})
}

fn operation(t: &ResourceType, version: &str, action: &str) -> Value {
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let mut op = json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": version, "kind": t.kind},
        "responses": {"200": {"description": "OK"}},
    });
    if action == "patch" || action == "put" || action == "post" {
        op["parameters"] = json!([
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation"),
            param("force")
        ]);
        let content: Map<String, Value> = if action == "patch" {
            [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
            .iter()
            .map(|c| (c.to_string(), json!({"schema": {"type": "object"}})))
            .collect()
        } else {
            [(
                "application/json".to_string(),
                json!({"schema": {"type": "object"}}),
            )]
            .into_iter()
            .collect()
        };
        op["requestBody"] = json!({"content": content});
    }
    op
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
pub fn v3_group(r: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = r
        .types()
        .filter(|t| t.group == group && t.serves(version))
        .collect();
    if types.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let mut paths = Map::new();
    for t in types {
        let base = format!("/{}", gv_path(group, version));
        let collection = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{base}/{}", t.plural)
        };
        let item = format!("{collection}/{{name}}");
        paths.insert(
            collection,
            json!({"get": operation(t, version, "list"), "post": operation(t, version, "post")}),
        );
        paths.insert(
            item.clone(),
            json!({
                "get": operation(t, version, "get"),
                "put": operation(t, version, "put"),
                "patch": operation(t, version, "patch"),
                "delete": operation(t, version, "delete"),
            }),
        );
        if t.status_subresource {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": operation(t, version, "get"),
                    "put": operation(t, version, "put"),
                    "patch": operation(t, version, "patch"),
                }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (lbspeaker test-apiserver)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_operation_names_its_kind_and_takes_field_validation() {
        let r = Registry::builtin();
        let doc = v3_group(&r, "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}/status"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
    }

    #[test]
    fn the_index_links_each_group_version_with_a_content_hash() {
        let r = Registry::builtin();
        let idx = v3_index(&r);
        let url = idx["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("/openapi/v3/apis/coordination.k8s.io/v1?hash="),
            "{url}"
        );
    }
}
