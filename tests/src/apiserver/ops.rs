//! The verbs on resources: get, list, watch, create, update, patch, delete and
//! deletecollection, with kube-apiserver's rules for metadata, the status subresource,
//! generation, optimistic concurrency, finalizers and CRDs. Everything runs under the state
//! lock, so each write is atomic and its watch events are in order.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{Value, json};

use super::defaults;
use super::error::ApiError;
use super::fields::{self, Manager, Scope};
use super::patch::{self, PatchType};
use super::path::{Query, ResourcePath};
use super::read::{self, selectors};
use super::registry::{self, ResourceType};
use super::store::{EndWatch, Key, State, now_rfc3339};
use super::table::{self, IncludeObject};

/// A resource request, with its body read.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a http::Method,
    pub path: &'a ResourcePath,
    pub query: &'a Query,
    pub content_type: &'a str,
    pub accept: &'a str,
    pub body: &'a [u8],
    /// `?fieldManager=`, or the name the client's user agent gives.
    pub manager: &'a str,
}

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    Json(u16, Value),
    Watch(WatchSetup),
}

/// An opened watch, for `watch::stream`.
#[derive(Debug)]
pub struct WatchSetup {
    pub id: u64,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<super::store::WatchMsg>,
    pub timeout: Option<std::time::Duration>,
    pub bookmarks: bool,
    /// Events as one-row Tables (kubectl `get -w`).
    pub table: Option<(Vec<table::Column>, IncludeObject)>,
    /// Events as PartialObjectMetadata (kube's `metadata_watcher`).
    pub metadata_only: bool,
    pub api_version: String,
}

pub fn dispatch(state: &mut State, req: &Request<'_>) -> Result<Reply, ApiError> {
    let p = req.path;
    let rt = state
        .registry
        .lookup(&p.group, &p.version, &p.plural)
        .cloned()
        .ok_or_else(ApiError::path_not_found)?;
    if !rt.namespaced && p.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    match p.subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some(_) => return Err(ApiError::path_not_found()),
    }
    let m = req.method;
    let base = req.content_type.split(';').next().unwrap_or("").trim();
    if (m == http::Method::POST || m == http::Method::PUT)
        && !matches!(base, "" | "application/json" | "application/yaml" | "*/*")
    {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the test API server reads JSON and YAML bodies (and protobuf for Namespaces, ConfigMaps \
                 and Secrets), not {base}: use `kubectl apply -f` or `kubectl create -f`"
            ),
        ));
    }
    match (p.name.as_deref(), p.subresource.is_some()) {
        (None, _) if m == http::Method::GET && req.query.flag("watch") => {
            read::watch(state, &rt, req, None)
        }
        (None, _) if m == http::Method::GET => read::list(state, &rt, req),
        (None, _) if m == http::Method::POST => create(state, &rt, req),
        (None, _) if m == http::Method::DELETE => delete_collection(state, &rt, req),
        (Some(n), _) if m == http::Method::GET && req.query.flag("watch") => {
            read::watch(state, &rt, req, Some(n))
        }
        (Some(n), _) if m == http::Method::GET => read::get(state, &rt, req, n),
        (Some(n), _) if m == http::Method::PUT => update(state, &rt, req, n),
        (Some(n), _) if m == http::Method::PATCH => patch(state, &rt, req, n),
        (Some(n), false) if m == http::Method::DELETE => {
            delete(state, &rt, req, n).map(|(c, v)| Reply::Json(c, v))
        }
        _ => Err(ApiError::method_not_allowed(m.as_str(), &p.plural)),
    }
}

/// An object as a client reads it through `version`.
pub(super) fn present(rt: &ResourceType, version: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version(version));
    o["kind"] = json!(rt.kind);
    o
}

pub(super) fn key(rt: &ResourceType, ns: Option<&str>, name: &str) -> Key {
    let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
    (ns.to_string(), name.to_string())
}

pub(super) fn meta_str<'a>(o: &'a Value, k: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn dry_run(req: &Request<'_>) -> bool {
    req.query.get("dryRun").is_some_and(|v| v == "All")
}

/// The request body as an object of this type: apiVersion and kind filled in when absent,
/// refused (400) when they name another type.
fn typed_body(rt: &ResourceType, version: &str, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut m) = body else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want = rt.api_version(version);
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("apiVersion".into(), json!(want));
        }
        Some(av) if av == want => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if !m.get("metadata").is_some_and(Value::is_object) {
        m.insert("metadata".into(), json!({}));
    }
    Ok(Value::Object(m))
}

/// Puts the path's namespace into the object, or refuses a body that names another (400).
fn place(rt: &ResourceType, req: &Request<'_>, obj: &mut Value) -> Result<(), ApiError> {
    if !rt.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let Some(ns) = req.path.namespace.as_deref() else {
        return Err(ApiError::method_not_allowed(
            req.method.as_str(),
            &rt.plural,
        ));
    };
    match meta_str(obj, "namespace") {
        "" => obj["metadata"]["namespace"] = json!(ns),
        n if n == ns => {}
        _ => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

fn valid_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let ok = if rt.plural == "namespaces" {
        label(name)
    } else {
        name.len() <= 253 && name.split('.').all(label)
    };
    if ok {
        return Ok(());
    }
    let what = if rt.plural == "namespaces" {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    };
    Err(ApiError::invalid(
        &rt.kind,
        &rt.group,
        name,
        &[(
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {what}"),
        )],
    ))
}

fn manager<'a>(rt: &'a ResourceType, req: &'a Request<'_>) -> Manager<'a> {
    Manager {
        name: req.manager,
        subresource: req.path.subresource.as_deref(),
        api_version: if rt.group.is_empty() {
            &req.path.version
        } else {
            &rt.group
        },
    }
}

/// A new object's server-set metadata and status.
fn init_new(
    state: &State,
    rt: &ResourceType,
    req: &Request<'_>,
    obj: &mut Value,
) -> Result<Key, ApiError> {
    place(rt, req, obj)?;
    if !meta_str(obj, "resourceVersion").is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let gr = rt.group_resource();
    let mut name = meta_str(obj, "name").to_string();
    if name.is_empty() {
        let prefix = meta_str(obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                "",
                &[(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        name = generate_name(&prefix);
        for _ in 0..8 {
            if state
                .get(&gr, &key(rt, req.path.namespace.as_deref(), &name))
                .is_none()
            {
                break;
            }
            name = generate_name(&prefix);
        }
        obj["metadata"]["name"] = json!(name);
    }
    valid_name(rt, &name)?;
    let k = key(rt, req.path.namespace.as_deref(), &name);
    if rt.namespaced && !state.namespace_exists(&k.0) {
        return Err(ApiError::not_found(super::error::Target {
            group: "",
            resource: "namespaces",
            name: &k.0,
        }));
    }
    if state.get(&gr, &k).is_some() {
        return Err(ApiError::already_exists(rt.target(&name)));
    }
    let meta = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("metadata is not an object"))?;
    meta.insert("uid".into(), json!(uuid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if rt.generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if rt.status_subresource
        && !rt.create_keeps_status
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        obj["status"] = json!({"phase": "Active"});
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    Ok(k)
}

fn create(state: &mut State, rt: &ResourceType, req: &Request<'_>) -> Result<Reply, ApiError> {
    if req.path.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST", &rt.plural));
    }
    let mut obj = typed_body(rt, &req.path.version, patch::parse_body(req.body)?)?;
    let k = init_new(state, rt, req, &mut obj)?;
    fields::record_update(&mut obj, None, &manager(rt, req));
    commit(state, rt, req, &k, None, obj, 201).map(|(c, v)| Reply::Json(c, v))
}

/// The object a write produces from `current` and a full body: the status subresource's
/// rules, immutable metadata kept, generation bumped when more than metadata changed.
fn merge_write(rt: &ResourceType, current: &Value, body: Value, sub: Option<&str>) -> Value {
    let mut new = if sub == Some("status") {
        let mut n = current.clone();
        match body.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        n
    } else {
        let mut n = body;
        if rt.status_subresource
            && let Some(m) = n.as_object_mut()
        {
            match current.get("status") {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        n
    };
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
        "managedFields",
    ] {
        match current.get("metadata").and_then(|m| m.get(k)) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if rt.generation && spec_changed(rt, current, &new) {
        let g = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    new
}

/// Whether anything outside metadata (and status, for types with a status subresource)
/// differs.
fn spec_changed(rt: &ResourceType, a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
            if rt.status_subresource {
                m.remove("status");
            }
        }
        v
    };
    strip(a) != strip(b)
}

fn check_precondition(
    rt: &ResourceType,
    current: &Value,
    body_rv: &str,
    name: &str,
) -> Result<(), ApiError> {
    if body_rv.is_empty() {
        if rt.allow_unconditional_update {
            return Ok(());
        }
        return Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            name,
            &[(
                "metadata.resourceVersion".into(),
                "Invalid value: 0x0: must be specified for an update".into(),
            )],
        ));
    }
    if body_rv != meta_str(current, "resourceVersion") {
        return Err(ApiError::conflict(rt.target(name)));
    }
    Ok(())
}

fn update(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
    name: &str,
) -> Result<Reply, ApiError> {
    let mut body = typed_body(rt, &req.path.version, patch::parse_body(req.body)?)?;
    match meta_str(&body, "name") {
        "" => body["metadata"]["name"] = json!(name),
        n if n == name => {}
        n => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    place(rt, req, &mut body)?;
    let k = key(rt, req.path.namespace.as_deref(), name);
    let Some(current) = state.get(&rt.group_resource(), &k).cloned() else {
        if rt.allow_create_on_update && req.path.subresource.is_none() {
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let k = init_new(state, rt, req, &mut body)?;
            fields::record_update(&mut body, None, &manager(rt, req));
            return commit(state, rt, req, &k, None, body, 201).map(|(c, v)| Reply::Json(c, v));
        }
        return Err(ApiError::not_found(rt.target(name)));
    };
    check_uid(rt, &current, &body, name)?;
    check_precondition(rt, &current, meta_str(&body, "resourceVersion"), name)?;
    let mut new = merge_write(rt, &current, body, req.path.subresource.as_deref());
    fields::record_update(&mut new, Some(&current), &manager(rt, req));
    commit(state, rt, req, &k, Some(&current), new, 200).map(|(c, v)| Reply::Json(c, v))
}

fn patch(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
    name: &str,
) -> Result<Reply, ApiError> {
    let kind = PatchType::from_content_type(req.content_type)
        .filter(|k| !(rt.custom && *k == PatchType::Strategic))
        .ok_or_else(|| {
            ApiError::unsupported_media_type(req.content_type, &PatchType::accepted(rt.custom))
        })?;
    let body = patch::parse_body(req.body)?;
    let sub = req.path.subresource.as_deref();
    let k = key(rt, req.path.namespace.as_deref(), name);
    let current = state.get(&rt.group_resource(), &k).cloned();
    let scope = match (sub, rt.status_subresource) {
        (Some(_), _) => Scope::Status,
        (None, true) => Scope::NotStatus,
        (None, false) => Scope::All,
    };
    if kind == PatchType::Apply {
        if req.query.value("fieldManager").is_none() {
            return Err(ApiError::bad_request(
                "PATCH requests with the apply content type (application/apply-patch+yaml) require fieldManager to be set",
            ));
        }
        let applied = typed_body(rt, &req.path.version, body.clone())?;
        match meta_str(&applied, "name") {
            n if n == name => {}
            n => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let Some(current) = current else {
            if sub.is_some() {
                return Err(ApiError::not_found(rt.target(name)));
            }
            let mut obj = applied.clone();
            let k = init_new(state, rt, req, &mut obj)?;
            fields::record_apply(&mut obj, None, &applied, &manager(rt, req), scope);
            return commit(state, rt, req, &k, None, obj, 201).map(|(c, v)| Reply::Json(c, v));
        };
        let patched = patch::apply(kind, &present(rt, &req.path.version, &current), &applied)?;
        check_patched_rv(rt, &current, &patched, name)?;
        let mut new = merge_write(rt, &current, patched, sub);
        fields::record_apply(&mut new, Some(&current), &applied, &manager(rt, req), scope);
        return commit(state, rt, req, &k, Some(&current), new, 200)
            .map(|(c, v)| Reply::Json(c, v));
    }
    let current = current.ok_or_else(|| ApiError::not_found(rt.target(name)))?;
    let patched = patch::apply(kind, &present(rt, &req.path.version, &current), &body)?;
    let patched = typed_body(rt, &req.path.version, patched)?;
    check_patched_rv(rt, &current, &patched, name)?;
    let mut new = merge_write(rt, &current, patched, sub);
    fields::record_update(&mut new, Some(&current), &manager(rt, req));
    commit(state, rt, req, &k, Some(&current), new, 200).map(|(c, v)| Reply::Json(c, v))
}

/// A write whose body names a `metadata.uid` other than the stored object's is refused, as
/// kube-apiserver refuses it: the object was deleted and created again since the writer read it.
fn check_uid(rt: &ResourceType, current: &Value, body: &Value, name: &str) -> Result<(), ApiError> {
    let want = meta_str(body, "uid");
    let have = meta_str(current, "uid");
    if !want.is_empty() && want != have {
        return Err(ApiError::conflict_because(
            rt.target(name),
            &format!(
                "Precondition failed: UID in precondition: {want}, UID in object meta: {have}"
            ),
        ));
    }
    Ok(())
}

/// A patch that sets `metadata.resourceVersion` makes it a precondition, and one that sets
/// `metadata.uid` another.
fn check_patched_rv(
    rt: &ResourceType,
    current: &Value,
    patched: &Value,
    name: &str,
) -> Result<(), ApiError> {
    check_uid(rt, current, patched, name)?;
    let rv = meta_str(patched, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(current, "resourceVersion") {
        return Err(ApiError::conflict(rt.target(name)));
    }
    Ok(())
}

/// The last step of every write: skip no-ops, finish deletions whose finalizers are gone,
/// keep CRDs' types in step, then store (unless a dry run).
fn commit(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
    k: &Key,
    current: Option<&Value>,
    mut new: Value,
    code: u16,
) -> Result<(u16, Value), ApiError> {
    defaults::apply(state, rt, current, &mut new)?;
    let version = &req.path.version;
    let gr = rt.group_resource();
    let is_crd = rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions";
    let mut declared = None;
    if is_crd {
        let t = registry::from_crd(&new)?;
        if state
            .registry
            .get(&t.group, &t.plural)
            .is_some_and(|e| !e.custom)
        {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                &t.plural,
                &[(
                    "spec.names.plural".into(),
                    "Invalid value: a built-in resource of that name exists".into(),
                )],
            ));
        }
        new["status"] = registry::crd_status(&new, current.and_then(|c| c.get("status")));
        declared = Some(t);
    }
    if let Some(cur) = current {
        let mut probe = new.clone();
        probe["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        probe["apiVersion"] = cur["apiVersion"].clone();
        if probe == *cur {
            return Ok((200, present(rt, version, cur)));
        }
    }
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if dry_run(req) {
        return Ok((code, present(rt, version, &new)));
    }
    if deleting && !finalizers && current.is_some() {
        state.put(&gr, k, new);
        let last =
            remove_object(state, rt, k).ok_or_else(|| ApiError::not_found(rt.target(&k.1)))?;
        return Ok((200, present(rt, version, &last)));
    }
    let stored = state.put(&gr, k, new);
    if let Some(t) = declared {
        state.registry.add(t);
    }
    Ok((code, present(rt, version, &stored)))
}

/// Removes an object and what goes with it: a namespace's contents, a CRD's objects and
/// type. Returns the object's last state.
fn remove_object(state: &mut State, rt: &ResourceType, k: &Key) -> Option<Value> {
    let gr = rt.group_resource();
    if rt.group.is_empty() && rt.plural == "namespaces" {
        let types: Vec<ResourceType> = state
            .registry
            .types()
            .filter(|t| t.namespaced)
            .cloned()
            .collect();
        for t in types {
            let g = t.group_resource();
            let keys: Vec<Key> = state
                .list(&g, Some(&k.1))
                .iter()
                .map(|o| (k.1.clone(), meta_str(o, "name").to_string()))
                .collect();
            for ok in keys {
                state.remove(&g, &ok);
            }
        }
    }
    let last = state.remove(&gr, k)?;
    if rt.group == "apiextensions.k8s.io"
        && rt.plural == "customresourcedefinitions"
        && let Ok(t) = registry::from_crd(&last)
        && state
            .registry
            .get(&t.group, &t.plural)
            .is_some_and(|e| e.custom)
    {
        let g = t.group_resource();
        let keys: Vec<Key> = state
            .list(&g, None)
            .iter()
            .map(|o| {
                (
                    meta_str(o, "namespace").to_string(),
                    meta_str(o, "name").to_string(),
                )
            })
            .collect();
        for ok in keys {
            state.remove(&g, &ok);
        }
        state.end_watches(Some(&g), EndWatch::Close);
        state.registry.remove(&g);
    }
    Some(last)
}

/// DeleteOptions from the body or the query.
fn delete_options(req: &Request<'_>) -> Result<Value, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    patch::parse_body(req.body)
}

fn delete(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
    name: &str,
) -> Result<(u16, Value), ApiError> {
    let opts = delete_options(req)?;
    let k = key(rt, req.path.namespace.as_deref(), name);
    let current = state
        .get(&rt.group_resource(), &k)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt.target(name)))?;
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = opts
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
        {
            let have = meta_str(&current, field);
            if want != have {
                return Err(ApiError::conflict_because(
                    rt.target(name),
                    &format!(
                        "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
                    ),
                ));
            }
        }
    }
    let dry = dry_run(req)
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let finalizers = current
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if finalizers {
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok((202, present(rt, &req.path.version, &current)));
        }
        let mut new = current.clone();
        new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if rt.generation {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if dry {
            return Ok((202, present(rt, &req.path.version, &new)));
        }
        let stored = state.put(&rt.group_resource(), &k, new);
        return Ok((202, present(rt, &req.path.version, &stored)));
    }
    if dry {
        return Ok((200, present(rt, &req.path.version, &current)));
    }
    let last = remove_object(state, rt, &k).ok_or_else(|| ApiError::not_found(rt.target(name)))?;
    Ok((200, present(rt, &req.path.version, &last)))
}

fn delete_collection(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
) -> Result<Reply, ApiError> {
    let (labels, fields) = selectors(rt, req.query)?;
    let ns = if rt.namespaced {
        req.path.namespace.as_deref()
    } else {
        None
    };
    let names: Vec<(String, String)> = state
        .list(&rt.group_resource(), ns)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| {
            (
                meta_str(&o, "namespace").to_string(),
                meta_str(&o, "name").to_string(),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        let path = ResourcePath {
            namespace: rt.namespaced.then_some(ns),
            name: Some(name.clone()),
            ..req.path.clone()
        };
        let one = Request {
            path: &path,
            body: b"",
            ..*req
        };
        items.push(delete(state, rt, &one, &name)?.1);
    }
    Ok(Reply::Json(
        200,
        json!({
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(&req.path.version),
            "metadata": {"resourceVersion": state.resource_version().to_string()},
            "items": items,
        }),
    ))
}

/// `prefix` plus five characters from kube-apiserver's alphabet (no vowels).
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| {
            char::from(
                ALPHABET
                    .get(rng.random_range(0..ALPHABET.len()))
                    .copied()
                    .unwrap_or(b'x'),
            )
        })
        .collect();
    format!("{prefix}{suffix}")
}

/// A random (version 4) UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or(""),
        h.get(8..12).unwrap_or(""),
        h.get(12..16).unwrap_or(""),
        h.get(16..20).unwrap_or(""),
        h.get(20..32).unwrap_or("")
    )
}

/// Stores an object as given (test seeding): type from apiVersion/kind, server metadata
/// added, status kept, namespace created when missing.
pub fn insert(state: &mut State, mut obj: Value) -> Result<Value, ApiError> {
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (rt, version) = state
        .registry
        .by_kind(&av, &kind)
        .map(|(t, v)| (t.clone(), v))
        .ok_or_else(|| ApiError::bad_request(format!("no resource serves {av} {kind}")))?;
    let name = meta_str(&obj, "name").to_string();
    valid_name(&rt, &name)?;
    let ns = meta_str(&obj, "namespace").to_string();
    if rt.namespaced && ns.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind} {name} needs a namespace"
        )));
    }
    if rt.namespaced && !state.namespace_exists(&ns) {
        insert(
            state,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    let k = key(&rt, Some(&ns), &name);
    let gr = rt.group_resource();
    let current = state.get(&gr, &k).cloned();
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    let keep = |k: &str| {
        current
            .as_ref()
            .and_then(|c| c.pointer(&format!("/metadata/{k}")))
            .cloned()
    };
    meta.insert("uid".into(), keep("uid").unwrap_or_else(|| json!(uuid())));
    meta.insert(
        "creationTimestamp".into(),
        keep("creationTimestamp").unwrap_or_else(|| json!(now_rfc3339())),
    );
    if rt.generation {
        let g = keep("generation")
            .and_then(|g| g.as_i64())
            .map_or(1, |g| g + 1);
        meta.insert("generation".into(), json!(g));
    }
    if rt.group.is_empty() && rt.plural == "namespaces" && obj.get("status").is_none() {
        obj["status"] = json!({"phase": "Active"});
    }
    let mut declared = None;
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        declared = Some(registry::from_crd(&obj)?);
        obj["status"] = registry::crd_status(&obj, None);
    }
    defaults::apply(state, &rt, current.as_ref(), &mut obj)?;
    let stored = state.put(&gr, &k, obj);
    if let Some(t) = declared {
        state.registry.add(t);
    }
    Ok(present(&rt, &version, &stored))
}

/// Deletes an object at once (finalizers ignored), with what goes with it. Returns its last
/// state.
pub fn remove(
    state: &mut State,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let (rt, version) = state
        .registry
        .by_kind(api_version, kind)
        .map(|(t, v)| (t.clone(), v))?;
    let last = remove_object(state, &rt, &key(&rt, Some(ns), name))?;
    Some(present(&rt, &version, &last))
}

/// Objects of a type, for assertions: every namespace, or one.
pub fn objects(state: &State, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
    let Some((rt, version)) = state.registry.by_kind(api_version, kind) else {
        return Vec::new();
    };
    state
        .list(&rt.group_resource(), ns)
        .iter()
        .map(|o| present(rt, &version, o))
        .collect()
}

/// The field manager kube-apiserver derives from a user agent: its part before the `/`.
pub fn manager_from_user_agent(ua: &str) -> String {
    ua.split('/').next().unwrap_or("").trim().to_string()
}

/// Counts by type, for the binary's summary.
pub fn census(state: &State) -> BTreeMap<String, usize> {
    state
        .registry
        .types()
        .map(|t| {
            (
                t.plural.clone(),
                state.list(&t.group_resource(), None).len(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
