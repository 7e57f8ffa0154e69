//! Request routing: which document or resource a path names, and the query parameters the
//! handlers read.

use std::collections::BTreeMap;

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/GROUP`
    Group(String),
    /// `/api/v1` or `/apis/GROUP/VERSION`
    Resources {
        group: String,
        version: String,
    },
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3`
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`
    OpenApiV3 {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    /// `/_test/...`: the binary's hooks over HTTP.
    Admin(String),
    NotFound,
}

/// A collection, object or subresource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// The namespace in the path (`/namespaces/NS/...`), if any.
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn route(path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::Resources {
            group: String::new(),
            version: v.to_string(),
        },
        ["apis", g, v] => Route::Resources {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", v] => Route::OpenApiV3 {
            group: String::new(),
            version: v.to_string(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3 {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["_test", rest @ ..] => Route::Admin(rest.join("/")),
        ["api", v, rest @ ..] => resource(String::new(), v, rest),
        ["apis", g, v, rest @ ..] => resource(g.to_string(), v, rest),
        _ => Route::NotFound,
    }
}

fn resource(group: String, version: &str, rest: &[&str]) -> Route {
    let p = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(ResourcePath {
            group: group.clone(),
            version: version.to_string(),
            namespace: namespace.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    let core = group.is_empty();
    match rest {
        // A namespace object and its subresources, not a namespaced collection.
        ["namespaces", ns] if core => p(None, "namespaces", Some(ns), None),
        ["namespaces", ns, sub @ ("status" | "finalize")] if core => {
            p(None, "namespaces", Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => p(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => p(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => p(Some(ns), plural, Some(name), Some(sub)),
        [plural] => p(None, plural, None, None),
        [plural, name] => p(None, plural, Some(name), None),
        [plural, name, sub] => p(None, plural, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

fn percent_decode(s: &str) -> String {
    // form_urlencoded turns '+' into ' ', which a path must not; protect it first.
    let protected = s.replace('+', "%2B");
    form_urlencoded::parse(format!("x={protected}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Query parameters, last value wins.
#[derive(Debug, Clone, Default)]
pub struct Query(pub BTreeMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A non-empty value.
    pub fn value(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }

    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(path: &str) -> ResourcePath {
        match route(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_collection_object_and_status_paths_parse() {
        let r = rp("/api/v1/namespaces/default/services/web/status");
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("default"), "services", Some("web"), Some("status"))
        );
        let r = rp("/apis/cilium.io/v2/ciliumloadbalancerippools");
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.name),
            ("cilium.io", "v2", None)
        );
    }

    #[test]
    fn a_namespace_path_names_the_namespace_object() {
        let r = rp("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = rp("/api/v1/namespaces/kube-system/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn discovery_paths_are_not_resources() {
        assert_eq!(
            route("/apis/cilium.io/v2"),
            Route::Resources {
                group: "cilium.io".into(),
                version: "v2".into()
            }
        );
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/nonsense/x"), Route::NotFound);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
    }
}
