//! The RBAC check: what the agents and operators sent (the API server's request log, by user
//! agent) against what `deploy/rbac/` grants their service accounts.
//!
//! A request needs `(group, resource[/subresource], verb)` in its namespace (or cluster-wide
//! for cluster-scoped objects and requests across namespaces). A ClusterRole bound by a
//! ClusterRoleBinding grants it everywhere, a Role bound by a RoleBinding in its namespace.
//! Verbs as kube-apiserver's authorizer names them: a GET is `get`, `list` or `watch`; a
//! server-side apply that created the object needs `create` besides `patch`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tests::apiserver::{RecordedRequest, Verb};

use super::root;

/// One permission: namespace (`None`: cluster-wide), API group, resource (with
/// `/subresource`), verb.
pub type Permission = (Option<String>, String, String, String);

/// The service account a user agent stands for.
fn account(user_agent: &str) -> Option<&'static str> {
    if user_agent.starts_with("lbspeaker-agent/") {
        Some("lbspeaker-agent")
    } else if user_agent.starts_with("lbspeaker-operator/") {
        Some("lbspeaker-operator")
    } else {
        None
    }
}

fn verb_name(v: Verb) -> &'static str {
    match v {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
    }
}

/// What each account used, from the request log.
pub fn used(requests: &[RecordedRequest]) -> BTreeMap<&'static str, BTreeSet<Permission>> {
    let mut out: BTreeMap<&'static str, BTreeSet<Permission>> = BTreeMap::new();
    for r in requests {
        let Some(acct) = r.user_agent.as_deref().and_then(account) else {
            continue;
        };
        let (Some(verb), Some(t)) = (r.verb, r.target.as_ref()) else {
            panic!(
                "{acct} sent a request that is not to a resource: {} {}",
                r.method, r.path
            );
        };
        let resource = match &t.subresource {
            Some(s) => format!("{}/{s}", t.resource),
            None => t.resource.clone(),
        };
        let mut verbs = vec![verb_name(verb)];
        let apply = r.content_type.as_deref() == Some("application/apply-patch+yaml");
        if verb == Verb::Patch && apply && r.status == 201 {
            verbs.push("create");
        }
        for v in verbs {
            out.entry(acct).or_default().insert((
                t.namespace.clone(),
                t.group.clone(),
                resource.clone(),
                v.to_string(),
            ));
        }
    }
    out
}

/// One rule of a role: where it applies (`None`: everywhere), groups, resources, verbs.
#[derive(Debug, Clone)]
pub struct Rule {
    pub namespace: Option<String>,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The rules `deploy/rbac/` grants each service account.
pub fn granted() -> BTreeMap<String, Vec<Rule>> {
    let mut docs = Vec::new();
    for e in std::fs::read_dir(root().join("deploy/rbac")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        docs.extend(tests::apiserver::documents(&text).unwrap());
    }
    let role_key =
        |kind: &str, ns: Option<&str>, name: &str| format!("{kind}/{}/{name}", ns.unwrap_or(""));
    let mut roles: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind == "ClusterRole" || kind == "Role" {
            let ns = (kind == "Role").then(|| d["metadata"]["namespace"].as_str().unwrap());
            let name = d["metadata"]["name"].as_str().unwrap();
            let rules = d["rules"].as_array().cloned().unwrap_or_default();
            assert!(
                rules.iter().all(|r| r.get("resourceNames").is_none() && r.get("nonResourceURLs").is_none()),
                "{kind} {name}: rules are by group, resource and verb only"
            );
            roles.insert(role_key(kind, ns, name), rules);
        }
    }
    let mut out: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
            continue;
        }
        let ns = (kind == "RoleBinding")
            .then(|| d["metadata"]["namespace"].as_str().unwrap().to_string());
        let rk = &d["roleRef"];
        let role_ns = (rk["kind"] == "Role").then(|| ns.as_deref().unwrap());
        let rules = roles
            .get(&role_key(
                rk["kind"].as_str().unwrap(),
                role_ns,
                rk["name"].as_str().unwrap(),
            ))
            .unwrap_or_else(|| panic!("{kind} refers to a role that is not in deploy/rbac: {rk}"));
        for s in d["subjects"].as_array().unwrap() {
            assert_eq!(s["kind"], "ServiceAccount");
            let acct = s["name"].as_str().unwrap().to_string();
            for r in rules {
                out.entry(acct.clone()).or_default().push(Rule {
                    namespace: ns.clone(),
                    groups: strings(&r["apiGroups"]),
                    resources: strings(&r["resources"]),
                    verbs: strings(&r["verbs"]),
                });
            }
        }
    }
    out
}

fn allows(rule: &Rule, p: &Permission) -> bool {
    let (ns, group, resource, verb) = p;
    let where_ok = match (&rule.namespace, ns) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    where_ok
        && rule.groups.contains(group)
        && rule.resources.contains(resource)
        && rule.verbs.contains(verb)
}

/// Every permission used is granted to the account that used it.
pub fn assert_granted(requests: &[RecordedRequest]) {
    let granted = granted();
    for (acct, perms) in used(requests) {
        let rules = granted.get(acct).map(Vec::as_slice).unwrap_or_default();
        let missing: Vec<&Permission> = perms
            .iter()
            .filter(|p| !rules.iter().any(|r| allows(r, p)))
            .collect();
        assert!(
            missing.is_empty(),
            "{acct} used what deploy/rbac does not grant it: {missing:?}"
        );
    }
}

/// Every permission granted was used: each (group, resource, verb) of each rule by a request
/// the rule allows.
pub fn assert_all_used(requests: &[RecordedRequest]) {
    let used = used(requests);
    for (acct, rules) in granted() {
        let perms = used.get(acct.as_str()).cloned().unwrap_or_default();
        let mut unused = Vec::new();
        for r in &rules {
            for g in &r.groups {
                for res in &r.resources {
                    for v in &r.verbs {
                        let hit = perms
                            .iter()
                            .any(|p| &p.1 == g && &p.2 == res && &p.3 == v && allows(r, p));
                        if !hit {
                            unused.push(format!("{:?} {g}/{res} {v}", r.namespace));
                        }
                    }
                }
            }
        }
        assert!(
            unused.is_empty(),
            "deploy/rbac grants {acct} what it never used: {unused:?}"
        );
    }
}
