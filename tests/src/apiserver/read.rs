//! The reading verbs: get, list (resourceVersion semantics, selectors, pagination with
//! consistent continue tokens) and watch.

use serde_json::{Value, json};

use super::error::ApiError;
use super::ops::{Reply, Request, WatchSetup, key, meta_str, present};
use super::path::Query;
use super::registry::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Key, State, WatchFilter, WatchStart};
use super::table::{self, IncludeObject};

pub(super) fn get(
    state: &State,
    rt: &ResourceType,
    req: &Request<'_>,
    name: &str,
) -> Result<Reply, ApiError> {
    let k = key(rt, req.path.namespace.as_deref(), name);
    let obj = state
        .get(&rt.group_resource(), &k)
        .ok_or_else(|| ApiError::not_found(rt.target(name)))?;
    let obj = present(rt, &req.path.version, obj);
    if table::wants_table(req.accept) {
        let cols = rt
            .columns
            .get(&req.path.version)
            .cloned()
            .unwrap_or_default();
        let meta = json!({"resourceVersion": meta_str(&obj, "resourceVersion")});
        let include = IncludeObject::parse(req.query.get("includeObject"));
        return Ok(Reply::Json(
            200,
            table::table(&cols, &[obj], include, meta, true),
        ));
    }
    if table::wants_metadata(req.accept) {
        return Ok(Reply::Json(200, table::partial_metadata(&obj)));
    }
    Ok(Reply::Json(200, obj))
}

pub(super) fn selectors(
    rt: &ResourceType,
    q: &Query,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
        FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), rt)?,
    ))
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: \"{s}\"")))
}

pub(super) fn list(state: &State, rt: &ResourceType, req: &Request<'_>) -> Result<Reply, ApiError> {
    let q = req.query;
    let (labels, fields) = selectors(rt, q)?;
    let current = state.resource_version();
    let (at, after): (u64, Option<Key>) = match q.value("continue") {
        Some(token) => decode_continue(token)?,
        None => match q.value("resourceVersion") {
            None | Some("0") => (current, None),
            Some(rv) => {
                let rv = parse_rv(rv)?;
                if rv > current {
                    let mut e = ApiError::new(
                        504,
                        "Timeout",
                        format!("Too large resource version: {rv}, current: {current}"),
                    );
                    e.details = Some(
                        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                    );
                    return Err(e);
                } else if q.get("resourceVersionMatch") == Some("Exact") {
                    (rv, None)
                } else {
                    (current, None)
                }
            }
        },
    };
    let snapshot = state.snapshot_at(&rt.group_resource(), at).map_err(|t| {
        if q.value("continue").is_some() {
            ApiError::expired(format!(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter. (resource version {} is older than {})",
                t.requested, t.oldest
            ))
        } else {
            ApiError::expired(format!("too old resource version: {} ({})", t.requested, t.oldest + 1))
        }
    })?;
    let ns = if rt.namespaced {
        req.path.namespace.as_deref()
    } else {
        None
    };
    let matching: Vec<(&Key, &Value)> = snapshot
        .iter()
        .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
        .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
        .filter(|(_, v)| labels.matches(v) && fields.matches(v))
        .collect();
    let limit = q
        .value("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (page, rest) = match limit {
        Some(l) if matching.len() > l => matching.split_at(l),
        _ => (matching.as_slice(), &[][..]),
    };
    let mut meta = json!({"resourceVersion": at.to_string()});
    if let (false, Some((last, _))) = (rest.is_empty(), page.last()) {
        meta["continue"] = json!(encode_continue(at, last));
        if q.value("labelSelector").is_none() && q.value("fieldSelector").is_none() {
            meta["remainingItemCount"] = json!(rest.len());
        }
    }
    let items: Vec<Value> = page
        .iter()
        .map(|(_, v)| present(rt, &req.path.version, v))
        .collect();
    if table::wants_table(req.accept) {
        let cols = rt
            .columns
            .get(&req.path.version)
            .cloned()
            .unwrap_or_default();
        let include = IncludeObject::parse(q.get("includeObject"));
        return Ok(Reply::Json(
            200,
            table::table(&cols, &items, include, meta, true),
        ));
    }
    if table::wants_metadata(req.accept) {
        let items: Vec<Value> = items.iter().map(table::partial_metadata).collect();
        return Ok(Reply::Json(
            200,
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items,
            }),
        ));
    }
    Ok(Reply::Json(
        200,
        json!({
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(&req.path.version),
            "metadata": meta,
            "items": items,
        }),
    ))
}

fn encode_continue(rv: u64, last: &Key) -> String {
    hex::encode(json!([rv, last.0, last.1]).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Option<Key>), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token \"{token}\""));
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let v: (u64, String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v.0, Some((v.1, v.2))))
}

pub(super) fn watch(
    state: &mut State,
    rt: &ResourceType,
    req: &Request<'_>,
    name: Option<&str>,
) -> Result<Reply, ApiError> {
    let q = req.query;
    let (labels, fields) = selectors(rt, q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    let initial = q.get("sendInitialEvents").map(|v| v == "true");
    let start = match (initial, q.value("resourceVersion")) {
        (Some(true), _) => WatchStart::Current(bookmarks),
        (_, None | Some("0")) => WatchStart::Current(false),
        (_, Some(rv)) => WatchStart::After(parse_rv(rv)?),
    };
    let name = name
        .map(str::to_string)
        .or_else(|| fields.name().map(str::to_string));
    let api_version = rt.api_version(&req.path.version);
    let filter = WatchFilter {
        gr: rt.group_resource(),
        api_version: api_version.clone(),
        namespace: if rt.namespaced {
            req.path.namespace.clone()
        } else {
            None
        },
        name,
        labels,
        fields,
        bookmarks,
    };
    let (id, rx) = state.watch(filter, start);
    let timeout = q
        .value("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    let table = table::wants_table(req.accept).then(|| {
        (
            rt.columns
                .get(&req.path.version)
                .cloned()
                .unwrap_or_default(),
            IncludeObject::parse(q.get("includeObject")),
        )
    });
    Ok(Reply::Watch(WatchSetup {
        id,
        rx,
        timeout,
        bookmarks,
        table,
        metadata_only: table::wants_metadata(req.accept),
        api_version,
    }))
}
