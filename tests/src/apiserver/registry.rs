//! The resource types the server serves: the built-ins lbspeaker uses and whatever an applied
//! CustomResourceDefinition declares. Everything else in the server is generic over
//! [`ResourceType`], so a CRD's resources behave like built-in ones.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::ApiError;
use super::table::Column;

/// A resource's identity in storage: group and plural (`("", "services")`).
pub type GroupResource = (String, String);

/// One served resource: what discovery advertises and what the handlers need to know.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResourceType {
    /// API group, "" for the core group.
    pub group: String,
    /// Served versions, most preferred first. Objects are stored once and read in any of
    /// them with only `apiVersion` changed (a CRD's `conversion: None`).
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource: main writes keep the stored status, status writes change
    /// only status.
    pub status_subresource: bool,
    /// Keeps `metadata.generation`, bumped on changes outside metadata (and status, when
    /// there is a status subresource).
    pub generation: bool,
    /// Keeps the status sent with a create (Nodes do); otherwise a create drops it when the
    /// type has a status subresource.
    pub create_keeps_status: bool,
    /// PUT on an absent object creates it (Events).
    pub allow_create_on_update: bool,
    /// PUT without `metadata.resourceVersion` is allowed (built-ins; custom resources refuse).
    pub allow_unconditional_update: bool,
    /// Defined by a CRD: strategic merge patch is refused (415), as kube-apiserver does.
    pub custom: bool,
    /// Field-selector labels beyond `metadata.name` and `metadata.namespace`.
    pub field_labels: Vec<String>,
    /// Table columns after `Name`, per version (kubectl's default output).
    pub columns: BTreeMap<String, Vec<Column>>,
}

impl ResourceType {
    /// A namespaced or cluster-scoped type with default behaviour, for tests that register
    /// their own resources.
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.to_string(),
            versions: vec![version.to_string()],
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            generation: false,
            create_keeps_status: false,
            allow_create_on_update: false,
            allow_unconditional_update: true,
            custom: false,
            field_labels: Vec::new(),
            columns: BTreeMap::new(),
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    fn fields(mut self, labels: &[&str]) -> Self {
        self.field_labels = labels.iter().map(|s| s.to_string()).collect();
        self
    }

    fn cols(mut self, columns: Vec<Column>) -> Self {
        for v in &self.versions {
            self.columns.insert(v.clone(), columns.clone());
        }
        self
    }

    pub fn group_resource(&self) -> GroupResource {
        (self.group.clone(), self.plural.clone())
    }

    /// `v1` or `cilium.io/v2`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The (group, name) pair errors report.
    pub fn target<'a>(&'a self, name: &'a str) -> super::error::Target<'a> {
        super::error::Target {
            group: &self.group,
            resource: &self.plural,
            name,
        }
    }

    /// Whether `label` may be used in a field selector.
    pub fn field_label_supported(&self, label: &str) -> bool {
        label == "metadata.name"
            || label == "metadata.namespace"
            || self.field_labels.iter().any(|l| l == label)
    }

    fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// Every served type, keyed by group and plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<GroupResource, ResourceType>,
}

impl Registry {
    /// The built-in types lbspeaker reads and writes.
    pub fn builtin() -> Self {
        use Column as C;
        let mut r = Registry::default();
        let core = |plural: &str, kind: &str, namespaced: bool| {
            ResourceType::new("", "v1", plural, kind, namespaced)
        };
        r.add(
            core("namespaces", "Namespace", false)
                .short(&["ns"])
                .with_status()
                .fields(&["status.phase"])
                .cols(vec![C::path("Status", "string", ".status.phase"), C::age()]),
        );
        let mut nodes = core("nodes", "Node", false)
            .short(&["no"])
            .with_status()
            .fields(&["spec.unschedulable"])
            .cols(vec![
                C::computed("Status", "string", node_ready),
                C::age(),
                C::path("Version", "string", ".status.nodeInfo.kubeletVersion"),
            ]);
        nodes.create_keeps_status = true;
        r.add(nodes);
        let mut services = core("services", "Service", true)
            .short(&["svc"])
            .with_status()
            .cols(vec![
                C::path("Type", "string", ".spec.type"),
                C::path("Cluster-IP", "string", ".spec.clusterIP"),
                C::computed("External-IP", "string", service_external_ips),
                C::computed("Port(s)", "string", service_ports),
                C::age(),
            ]);
        services.categories = vec!["all".into()];
        r.add(services);
        r.add(core("secrets", "Secret", true).fields(&["type"]).cols(vec![
            C::path("Type", "string", ".type"),
            C::computed("Data", "integer", |o| {
                json!(
                    o.get("data")
                        .and_then(Value::as_object)
                        .map_or(0, |m| m.len())
                )
            }),
            C::age(),
        ]));
        r.add(
            core("configmaps", "ConfigMap", true)
                .short(&["cm"])
                .cols(vec![
                    C::computed("Data", "integer", |o| {
                        json!(
                            o.get("data")
                                .and_then(Value::as_object)
                                .map_or(0, |m| m.len())
                        )
                    }),
                    C::age(),
                ]),
        );
        let mut events = core("events", "Event", true)
            .short(&["ev"])
            .fields(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ])
            .cols(vec![
                C::path("Type", "string", ".type"),
                C::path("Reason", "string", ".reason"),
                C::computed("Object", "string", |o| {
                    let kind = o
                        .pointer("/involvedObject/kind")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let name = o
                        .pointer("/involvedObject/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    json!(format!("{}/{name}", kind.to_ascii_lowercase()))
                }),
                C::path("Message", "string", ".message"),
            ]);
        events.allow_create_on_update = true;
        r.add(events);
        let mut ev2 = ResourceType::new("events.k8s.io", "v1", "events", "Event", true)
            .short(&["ev"])
            .fields(&[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
            ])
            .cols(vec![
                C::path("Type", "string", ".type"),
                C::path("Reason", "string", ".reason"),
                C::path("Note", "string", ".note"),
            ]);
        ev2.allow_create_on_update = true;
        r.add(ev2);
        r.add(
            ResourceType::new(
                "discovery.k8s.io",
                "v1",
                "endpointslices",
                "EndpointSlice",
                true,
            )
            .with_generation()
            .cols(vec![
                C::path("AddressType", "string", ".addressType"),
                C::computed("Endpoints", "string", |o| {
                    let ips: Vec<&str> = o
                        .get("endpoints")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .flat_map(|e| {
                            e.get("addresses")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                        })
                        .filter_map(Value::as_str)
                        .collect();
                    json!(if ips.is_empty() {
                        "<unset>".to_string()
                    } else {
                        ips.join(",")
                    })
                }),
                C::age(),
            ]),
        );
        r.add(
            ResourceType::new("coordination.k8s.io", "v1", "leases", "Lease", true).cols(vec![
                C::path("Holder", "string", ".spec.holderIdentity"),
                C::age(),
            ]),
        );
        let mut crd = ResourceType::new(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )
        .short(&["crd", "crds"])
        .with_status()
        .with_generation()
        .cols(vec![C::path(
            "Created At",
            "date",
            ".metadata.creationTimestamp",
        )]);
        crd.categories = vec!["api-extensions".into()];
        r.add(crd);
        r
    }

    /// Adds or replaces a type.
    pub fn add(&mut self, t: ResourceType) {
        self.types.insert(t.group_resource(), t);
    }

    pub fn remove(&mut self, gr: &GroupResource) -> Option<ResourceType> {
        self.types.remove(gr)
    }

    pub fn get(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types.get(&(group.to_string(), plural.to_string()))
    }

    /// The type serving `plural` at group/version.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.get(group, plural).filter(|t| t.serves(version))
    }

    /// The type of an object by its `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<(&ResourceType, String)> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind && t.serves(version))
            .map(|t| (t, version.to_string()))
    }

    /// `/api`: the core group's versions.
    pub fn core_versions(&self) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })
    }

    /// Non-core groups with their versions, preferred first.
    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values().filter(|t| !t.group.is_empty()) {
            let vs = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !vs.contains(v) {
                    vs.push(v.clone());
                }
            }
        }
        for vs in groups.values_mut() {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    fn group_doc(name: &str, versions: &[String]) -> Value {
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
            .collect();
        let preferred = vs.first().cloned().unwrap_or(Value::Null);
        json!({"name": name, "versions": vs, "preferredVersion": preferred})
    }

    /// `/apis`: every non-core group.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(g, vs)| Self::group_doc(g, vs))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/GROUP`.
    pub fn group(&self, group: &str) -> Option<Value> {
        let groups = self.groups();
        let vs = groups.get(group)?;
        let mut doc = Self::group_doc(group, vs);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `/api/v1` or `/apis/GROUP/VERSION`: the APIResourceList kubectl discovers resources from.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<&ResourceType> = self
            .types
            .values()
            .filter(|t| t.group == group && t.serves(version))
            .collect();
        if types.is_empty() && !(group.is_empty() && version == "v1") {
            return None;
        }
        let resources: Vec<Value> = types.iter().flat_map(|t| t.discovery_entries()).collect();
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }

    /// Every served group/version, for the OpenAPI v3 index.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out = vec![(String::new(), "v1".to_string())];
        for (g, vs) in self.groups() {
            for v in vs {
                out.push((g.clone(), v));
            }
        }
        out
    }

    pub fn types(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }
}

/// `("cilium.io", "v2")` from `cilium.io/v2`; `("", "v1")` from `v1`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version ordering: GA above beta above alpha, higher numbers first, anything
/// else last (`v2 > v1 > v2beta1 > v1beta2 > v1alpha1 > foo`).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = rest.strip_prefix(digits.as_str()).unwrap_or("");
    let (level, num) = if tail.is_empty() {
        (3, "0")
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    let minor = if level == 3 {
        0
    } else {
        match num.parse::<u32>() {
            Ok(m) => m,
            Err(_) => return (0, 0, 0),
        }
    };
    (level, major, minor)
}

/// The resource type a CustomResourceDefinition declares, or why it is invalid (422).
pub fn from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            &[(field.to_string(), msg.to_string())],
        )
    };
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let group = s("/spec/group");
    let plural = s("/spec/names/plural");
    let kind = s("/spec/names/kind");
    if group.is_empty() {
        return Err(invalid("spec.group", "Required value"));
    }
    if plural.is_empty() {
        return Err(invalid("spec.names.plural", "Required value"));
    }
    if kind.is_empty() {
        return Err(invalid("spec.names.kind", "Required value"));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match s("/spec/scope").as_str() {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid(
                "spec.scope",
                &format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut served: Vec<String> = Vec::new();
    let mut storage = 0;
    let mut status = false;
    let mut selectable: Vec<String> = Vec::new();
    let mut columns = BTreeMap::new();
    for v in &versions {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if vname.is_empty() {
            return Err(invalid("spec.versions[].name", "Required value"));
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        for f in v
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = f.get("jsonPath").and_then(Value::as_str) {
                let label = p.trim_start_matches('.').to_string();
                if !selectable.contains(&label) {
                    selectable.push(label);
                }
            }
        }
        let cols: Vec<Column> = match v.get("additionalPrinterColumns").and_then(Value::as_array) {
            Some(pcs) => pcs.iter().filter_map(Column::from_crd).collect(),
            None => vec![Column::age()],
        };
        columns.insert(vname.clone(), cols);
        served.push(vname);
    }
    if storage != 1 {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    served.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    let strings = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let singular = match s("/spec/names/singular") {
        x if x.is_empty() => kind.to_ascii_lowercase(),
        x => x,
    };
    let list_kind = match s("/spec/names/listKind") {
        x if x.is_empty() => format!("{kind}List"),
        x => x,
    };
    Ok(ResourceType {
        group,
        versions: served,
        plural,
        singular,
        kind,
        list_kind,
        namespaced,
        short_names: strings("/spec/names/shortNames"),
        categories: strings("/spec/names/categories"),
        status_subresource: status,
        generation: true,
        create_keeps_status: false,
        allow_create_on_update: false,
        allow_unconditional_update: false,
        custom: true,
        field_labels: selectable,
        columns,
    })
}

/// The status kube-apiserver's CRD controllers give an accepted CRD: names accepted,
/// established, the storage version recorded.
pub fn crd_status(crd: &Value, old_status: Option<&Value>) -> Value {
    let now = super::store::now_rfc3339();
    let mut stored: Vec<Value> = old_status
        .and_then(|s| s.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if v.get("storage").and_then(Value::as_bool) == Some(true)
            && let Some(n) = v.get("name")
            && !stored.contains(n)
        {
            stored.push(n.clone());
        }
    }
    let mut names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if names.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        names["singular"] = json!(k.to_ascii_lowercase());
    }
    if names.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        names["listKind"] = json!(format!("{k}List"));
    }
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    // Both conditions are always True here: once set, they keep their transition times.
    let conditions = old_status
        .and_then(|s| s.get("conditions"))
        .filter(|c| c.as_array().is_some_and(|a| a.len() == 2))
        .cloned()
        .unwrap_or_else(|| {
            json!([
                cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                cond(
                    "Established",
                    "InitialNamesAccepted",
                    "the initial names have been accepted"
                ),
            ])
        });
    json!({
        "conditions": conditions,
        "acceptedNames": names,
        "storedVersions": stored,
    })
}

/// `Ready`/`NotReady` from a Node's Ready condition, as kubectl shows it.
fn node_ready(o: &Value) -> Value {
    let ready = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .and_then(|c| c.get("status").and_then(Value::as_str));
    json!(match ready {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    })
}

/// The EXTERNAL-IP column: load-balancer ingress addresses, `<pending>` for a LoadBalancer
/// without one, `<none>` otherwise.
fn service_external_ips(o: &Value) -> Value {
    let mut ips: Vec<String> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.get("ip")
                .or_else(|| i.get("hostname"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    for ip in o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = ip.as_str() {
            ips.push(s.to_string());
        }
    }
    let lb = o.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
    json!(match (ips.is_empty(), lb) {
        (false, _) => ips.join(","),
        (true, true) => "<pending>".to_string(),
        (true, false) => "<none>".to_string(),
    })
}

/// The PORT(S) column: `80:31000/TCP,443/TCP`.
fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").map(|v| v.to_string()).unwrap_or_default();
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort") {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    json!(if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "ciliumloadbalancerippools.cilium.io"},
            "spec": {
                "group": "cilium.io",
                "scope": "Cluster",
                "names": {"plural": "ciliumloadbalancerippools", "singular": "ciliumloadbalancerippool",
                          "kind": "CiliumLoadBalancerIPPool", "listKind": "CiliumLoadBalancerIPPoolList",
                          "shortNames": ["ippools", "ippool", "lbippool"], "categories": ["cilium"]},
                "versions": [
                    {"name": "v2alpha1", "served": true, "storage": false},
                    {"name": "v2", "served": true, "storage": true, "subresources": {"status": {}},
                     "additionalPrinterColumns": [{"name": "Disabled", "type": "boolean", "jsonPath": ".spec.disabled"}]}
                ]
            }
        })
    }

    #[test]
    fn a_crd_declares_a_cluster_scoped_type_with_status_and_names() {
        let t = from_crd(&pool_crd()).unwrap();
        assert_eq!(t.group, "cilium.io");
        assert_eq!(t.versions, vec!["v2", "v2alpha1"]);
        assert!(!t.namespaced);
        assert!(t.status_subresource);
        assert!(t.custom && t.generation && !t.allow_unconditional_update);
        assert_eq!(t.short_names, vec!["ippools", "ippool", "lbippool"]);
        assert_eq!(t.columns["v2"].len(), 1);
        assert_eq!(t.columns["v2alpha1"].len(), 1, "the default Age column");
    }

    #[test]
    fn a_crd_whose_name_is_not_plural_dot_group_is_invalid() {
        let mut crd = pool_crd();
        crd["metadata"]["name"] = json!("pools.cilium.io");
        let e = from_crd(&crd).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.names.plural"), "{}", e.message);
    }

    #[test]
    fn versions_sort_ga_then_beta_then_alpha() {
        let mut v = vec!["v1alpha1", "v2beta1", "v1", "v2", "v1beta2", "foo"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn discovery_lists_the_status_subresource_of_services() {
        let r = Registry::builtin();
        let list = r.resource_list("", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"services") && names.contains(&"services/status"));
        assert!(r.resource_list("cilium.io", "v2").is_none());
    }

    #[test]
    fn a_pending_load_balancer_shows_pending_as_kubectl_does() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        assert_eq!(service_external_ips(&svc), json!("<pending>"));
        assert_eq!(service_ports(&svc), json!("80:30080/TCP"));
    }
}
