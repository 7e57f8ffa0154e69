//! `metadata.managedFields`: which manager owns which fields. A field is a path of map keys;
//! lists and scalars are leaves (lists are atomic here, where real server-side apply can own
//! list items by key). Every write records its manager (`?fieldManager=`, else the client's
//! user agent): an Update takes the fields it changed, an Apply owns exactly the fields it
//! sent and removes fields it applied before, no longer applies, and nobody else owns.
//! Conflicts are never reported: every apply behaves as `force=true`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

type Path = Vec<String>;

/// Who is writing.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub subresource: Option<&'a str>,
    pub api_version: &'a str,
}

/// Metadata the server owns; never part of a field set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
];

fn leaves(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if prefix.is_empty() && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if prefix.len() == 1
                    && prefix.first().is_some_and(|p| p == "metadata")
                    && SERVER_META.contains(&k.as_str())
                {
                    continue;
                }
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

/// Every leaf path of an object, server-owned metadata aside.
pub fn leaf_paths(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

/// The leaves of `new` whose value differs in `old`.
fn changed(old: Option<&Value>, new: &Value) -> BTreeSet<Path> {
    leaf_paths(new)
        .into_iter()
        .filter(|p| old.and_then(|o| at(o, p)) != at(new, p))
        .collect()
}

/// A field set as `fieldsV1` (`{"f:spec": {"f:type": {}}}`).
pub fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut node = &mut root;
        for k in p {
            let entry = node.entry(format!("f:{k}")).or_insert_with(|| json!({}));
            let Value::Object(m) = entry else { break };
            node = m;
        }
    }
    Value::Object(root)
}

/// A `fieldsV1` back as a field set; list-item keys (`k:`, `v:`, `i:`) and `.` make their
/// parent a leaf.
pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
        let fields: Vec<(&String, &Value)> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("f:"))
            .collect();
        let other = v
            .as_object()
            .is_some_and(|m| m.keys().any(|k| !k.starts_with("f:")));
        if (fields.is_empty() || other) && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        for (k, child) in fields {
            prefix.push(k.trim_start_matches("f:").to_string());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

impl Entry {
    fn same(&self, m: &Manager<'_>, op: &str) -> bool {
        self.manager == m.name
            && self.operation == op
            && self.subresource.as_deref() == m.subresource
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if let Some(s) = &self.subresource {
            e["subresource"] = json!(s);
        }
        e
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                api_version: s("apiVersion"),
                time: s("time"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

fn store(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Removes a path's value; parents stay.
fn remove_path(obj: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Records a create, update or non-apply patch: `new` gets the managedFields of `old` with
/// the changed fields moved to `m`.
pub fn record_update(new: &mut Value, old: Option<&Value>, m: &Manager<'_>) {
    let changed = changed(old, new);
    let present = leaf_paths(new);
    let mut list = entries(old);
    // Losing fields is not a write by their owner: its time stays.
    for e in &mut list {
        e.fields
            .retain(|p| present.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let now = super::store::now_rfc3339();
        match list.iter_mut().find(|e| e.same(m, "Update")) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now;
                e.api_version = m.api_version.to_string();
            }
            None => list.push(Entry {
                manager: m.name.to_string(),
                operation: "Update".into(),
                subresource: m.subresource.map(str::to_string),
                api_version: m.api_version.to_string(),
                time: now,
                fields: changed,
            }),
        }
    }
    store(new, list);
}

/// Records a server-side apply of `applied` that produced `new` from `old`: removes from
/// `new` the fields `m` applied last time, not this time, and nobody else owns, then makes
/// `m`'s Apply entry own exactly what it sent.
pub fn record_apply(
    new: &mut Value,
    old: Option<&Value>,
    applied: &Value,
    m: &Manager<'_>,
    scope: Scope,
) {
    let sent: BTreeSet<Path> = leaf_paths(applied)
        .into_iter()
        .filter(|p| scope.covers(p))
        .collect();
    let mut list = entries(old);
    let previous: BTreeSet<Path> = list
        .iter()
        .filter(|e| e.same(m, "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: BTreeSet<Path> = list
        .iter()
        .filter(|e| !e.same(m, "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous
        .iter()
        .filter(|p| !sent.contains(*p) && !others.contains(*p))
    {
        remove_path(new, p);
    }
    let changed = changed(old, new);
    let present = leaf_paths(new);
    for e in list.iter_mut().filter(|e| !e.same(m, "Apply")) {
        e.fields
            .retain(|p| present.contains(p) && !changed.contains(p));
    }
    let sent: BTreeSet<Path> = sent.into_iter().filter(|p| present.contains(p)).collect();
    match list.iter_mut().find(|e| e.same(m, "Apply")) {
        Some(e) if e.fields == sent => {}
        Some(e) => {
            e.fields = sent;
            e.time = super::store::now_rfc3339();
            e.api_version = m.api_version.to_string();
        }
        None => list.push(Entry {
            manager: m.name.to_string(),
            operation: "Apply".into(),
            subresource: m.subresource.map(str::to_string),
            api_version: m.api_version.to_string(),
            time: super::store::now_rfc3339(),
            fields: sent,
        }),
    }
    store(new, list);
}

/// Which fields a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// The main resource of a type with a status subresource.
    NotStatus,
    /// The status subresource.
    Status,
}

impl Scope {
    fn covers(self, p: &[String]) -> bool {
        let status = p.first().is_some_and(|k| k == "status");
        match self {
            Scope::All => true,
            Scope::NotStatus => !status,
            Scope::Status => status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr(name: &str) -> Manager<'_> {
        Manager {
            name,
            subresource: None,
            api_version: "v1",
        }
    }

    fn owners(obj: &Value) -> Vec<(String, String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().into(),
                    e["operation"].as_str().unwrap().into(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_create_makes_its_manager_own_every_field_it_set() {
        let mut o = json!({"apiVersion": "v1", "kind": "Lease", "metadata": {"name": "l", "labels": {"a": "b"}},
                           "spec": {"holderIdentity": "n1"}});
        record_update(&mut o, None, &mgr("agent"));
        assert_eq!(
            owners(&o),
            vec![(
                "agent".into(),
                "Update".into(),
                json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:holderIdentity": {}}})
            )]
        );
    }

    #[test]
    fn an_update_takes_the_fields_it_changed_from_their_owner() {
        let mut old = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 15}});
        record_update(&mut old, None, &mgr("a"));
        let mut new = old.clone();
        new["spec"]["holderIdentity"] = json!("n2");
        record_update(&mut new, Some(&old), &mgr("b"));
        let o = owners(&new);
        assert_eq!(o[0].2, json!({"f:spec": {"f:leaseDurationSeconds": {}}}));
        assert_eq!(
            o[1],
            (
                "b".into(),
                "Update".into(),
                json!({"f:spec": {"f:holderIdentity": {}}})
            )
        );
    }

    #[test]
    fn an_apply_removes_what_it_no_longer_sends_unless_someone_else_owns_it() {
        let applied1 = json!({"metadata": {"name": "s", "labels": {"x": "1", "y": "2"}}});
        let mut v1 = applied1.clone();
        record_apply(&mut v1, None, &applied1, &mgr("op"), Scope::All);
        let applied2 = json!({"metadata": {"name": "s", "labels": {"x": "1"}}});
        let mut v2 = v1.clone();
        json_patch::merge(&mut v2, &applied2);
        record_apply(&mut v2, Some(&v1), &applied2, &mgr("op"), Scope::All);
        assert_eq!(v2["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(
            owners(&v2)[0].2,
            json!({"f:metadata": {"f:labels": {"f:x": {}}}})
        );
    }

    #[test]
    fn applying_the_same_thing_twice_leaves_managed_fields_alone() {
        let applied = json!({"spec": {"a": 1}});
        let mut v1 = applied.clone();
        v1["metadata"] = json!({"name": "x"});
        record_apply(&mut v1, None, &applied, &mgr("op"), Scope::All);
        let mut v2 = v1.clone();
        record_apply(&mut v2, Some(&v1), &applied, &mgr("op"), Scope::All);
        assert_eq!(v1, v2);
    }

    #[test]
    fn fields_v1_round_trips_and_reads_list_item_keys_as_leaves() {
        let real = json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}});
        let set = from_fields_v1(&real);
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec![vec!["status".to_string(), "conditions".to_string()]]
        );
    }
}
