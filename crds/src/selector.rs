//! Label selectors, evaluated in one place for every reconciler.
//!
//! The BGP reconciler (cluster-config `nodeSelector`, advertisement selectors over services and
//! pod IP pools, peer-family `advertisements`), the L2 reconciler (`serviceSelector`,
//! `nodeSelector`) and LB-IPAM (pool `serviceSelector`) all select with Kubernetes'
//! `LabelSelector` plus Cilium's pseudo-labels. The core crates (`lbipam`, `l2announce`, `bgp`)
//! never depend on Kubernetes types, so they never see a selector: `agent-glue` compiles
//! selectors here, evaluates them against the objects of a snapshot and hands the core crates
//! the results (for LB-IPAM: which pools each service is eligible for).
//!
//! A selector is compiled once ([`Selector::compile`]); compiling checks what Kubernetes'
//! `LabelSelectorAsSelector` checks and returns a [`SelectorError`] whose text is meant for a
//! status condition such as `io.cilium/bad-service-selector`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Pseudo-label carrying a Service's name (Cilium's `io.kubernetes.service.name`).
pub const SERVICE_NAME_LABEL: &str = "io.kubernetes.service.name";
/// Pseudo-label carrying a Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "io.kubernetes.service.namespace";
/// Pseudo-label carrying a CiliumPodIPPool's name.
pub const POD_IP_POOL_NAME_LABEL: &str = "io.cilium.podippool.name";
/// Pseudo-label carrying a CiliumPodIPPool's namespace (empty: the pools are cluster-scoped).
pub const POD_IP_POOL_NAMESPACE_LABEL: &str = "io.cilium.podippool.namespace";

/// Something with labels.
pub trait Labels {
    /// The value of label `key`, if set.
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get(&self, key: &str) -> Option<&str> {
        (**self).get(key)
    }
}

/// An object's labels plus pseudo-labels that take precedence over them (as in Cilium, where
/// they are written over a copy of the labels). Nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct WithPseudoLabels<'a> {
    labels: Option<&'a BTreeMap<String, String>>,
    pseudo: [(&'static str, &'a str); 2],
}

impl<'a> WithPseudoLabels<'a> {
    /// A Service's labels with `io.kubernetes.service.name` and `.namespace`.
    pub fn service(
        labels: Option<&'a BTreeMap<String, String>>,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        WithPseudoLabels {
            labels,
            pseudo: [
                (SERVICE_NAME_LABEL, name),
                (SERVICE_NAMESPACE_LABEL, namespace),
            ],
        }
    }

    /// A CiliumPodIPPool's labels with `io.cilium.podippool.name` and `.namespace`.
    pub fn pod_ip_pool(
        labels: Option<&'a BTreeMap<String, String>>,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        WithPseudoLabels {
            labels,
            pseudo: [
                (POD_IP_POOL_NAME_LABEL, name),
                (POD_IP_POOL_NAMESPACE_LABEL, namespace),
            ],
        }
    }
}

impl Labels for WithPseudoLabels<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        for (k, v) in self.pseudo {
            if k == key {
                return Some(v);
            }
        }
        self.labels.and_then(|l| l.get(key)).map(String::as_str)
    }
}

/// What a missing (nil) selector means. Cilium differs per field: a nil `serviceSelector` or
/// `nodeSelector` selects everything, a nil advertisement `selector` or family `advertisements`
/// selects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNil {
    /// Nil selects every object.
    Everything,
    /// Nil selects no object.
    Nothing,
}

/// A compiled label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Nothing,
    /// All must hold; empty = everything.
    All(Vec<Requirement>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Why a selector cannot be evaluated. The text names the part of the selector and the rule, to
/// be put into a status condition or a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
#[non_exhaustive]
pub struct SelectorError {
    /// Path inside the selector: `matchExpressions[1].operator`, `matchLabels["a b"]`.
    pub path: String,
    /// The rule broken.
    pub message: String,
}

impl SelectorError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SelectorError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error under a field path, e.g. `spec.serviceSelector.matchExpressions[0]...`.
    pub fn under(&self, field: &str) -> String {
        format!("{field}.{self}")
    }
}

impl Selector {
    /// A selector that matches every object (an empty `LabelSelector`).
    pub fn everything() -> Self {
        Selector {
            kind: Kind::All(Vec::new()),
        }
    }

    /// A selector that matches no object.
    pub fn nothing() -> Self {
        Selector {
            kind: Kind::Nothing,
        }
    }

    /// Compiles an optional selector, `nil` meaning what the field defines.
    pub fn compile_optional(
        sel: Option<&LabelSelector>,
        when_nil: WhenNil,
    ) -> Result<Self, SelectorError> {
        match (sel, when_nil) {
            (Some(s), _) => Self::compile(s),
            (None, WhenNil::Everything) => Ok(Self::everything()),
            (None, WhenNil::Nothing) => Ok(Self::nothing()),
        }
    }

    /// Compiles a selector, checking it the way Kubernetes does: known operators, values present
    /// exactly for `In`/`NotIn`, label keys qualified names, label values valid.
    pub fn compile(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if let Some(labels) = &sel.match_labels {
            for (k, v) in labels {
                let path = format!("matchLabels[{k:?}]");
                check_key(k).map_err(|m| SelectorError::new(&path, m))?;
                check_value(v).map_err(|m| SelectorError::new(&path, m))?;
                reqs.push(Requirement {
                    key: k.clone(),
                    op: Op::In,
                    values: vec![v.clone()],
                });
            }
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let path = format!("matchExpressions[{i}]");
            check_key(&e.key).map_err(|m| SelectorError::new(format!("{path}.key"), m))?;
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(SelectorError::new(
                        format!("{path}.operator"),
                        format!(
                            "{other:?} is not a valid operator (In, NotIn, Exists, DoesNotExist)"
                        ),
                    ));
                }
            };
            let values = e.values.clone().unwrap_or_default();
            match op {
                Op::In | Op::NotIn if values.is_empty() => {
                    return Err(SelectorError::new(
                        format!("{path}.values"),
                        format!("must not be empty for operator {}", e.operator),
                    ));
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err(SelectorError::new(
                        format!("{path}.values"),
                        format!("must be empty for operator {}", e.operator),
                    ));
                }
                _ => {}
            }
            for (j, v) in values.iter().enumerate() {
                check_value(v).map_err(|m| SelectorError::new(format!("{path}.values[{j}]"), m))?;
            }
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Ok(Selector {
            kind: Kind::All(reqs),
        })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        match &self.kind {
            Kind::Nothing => false,
            Kind::All(reqs) => reqs.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.op {
                    Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    Op::NotIn => v.is_none_or(|v| r.values.iter().all(|x| x != v)),
                    Op::Exists => v.is_some(),
                    Op::DoesNotExist => v.is_none(),
                }
            }),
        }
    }

    /// Whether this selector matches every object (nil-as-everything or `{}`).
    pub fn is_everything(&self) -> bool {
        matches!(&self.kind, Kind::All(r) if r.is_empty())
    }

    /// Whether this selector matches no object at all.
    pub fn is_nothing(&self) -> bool {
        matches!(self.kind, Kind::Nothing)
    }
}

impl fmt::Display for Selector {
    /// `kubectl`'s notation: `app in (webpod),!legacy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Nothing => f.write_str("<none>"),
            Kind::All(r) if r.is_empty() => f.write_str("<everything>"),
            Kind::All(reqs) => {
                for (i, r) in reqs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match r.op {
                        Op::In if r.values.len() == 1 => write!(f, "{}={}", r.key, r.values[0])?,
                        Op::In => write!(f, "{} in ({})", r.key, r.values.join(","))?,
                        Op::NotIn => write!(f, "{} notin ({})", r.key, r.values.join(","))?,
                        Op::Exists => f.write_str(&r.key)?,
                        Op::DoesNotExist => write!(f, "!{}", r.key)?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters (empty allowed when
/// `allow_empty`).
fn check_name_part(s: &str, what: &str, allow_empty: bool) -> Result<(), String> {
    if s.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err(format!("{what} must not be empty"))
        };
    }
    if s.len() > 63 {
        return Err(format!("{what} {s:?} must be at most 63 characters"));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let first = s.chars().next().is_some_and(alnum);
    let last = s.chars().next_back().is_some_and(alnum);
    let middle = s
        .chars()
        .all(|c| alnum(c) || c == '-' || c == '_' || c == '.');
    if first && last && middle {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} must consist of alphanumerics, '-', '_' or '.', and begin and end \
             with an alphanumeric"
        ))
    }
}

/// A label key: `[prefix/]name`, prefix a DNS-1123 subdomain of at most 253 characters.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(ok_label) {
            return Err(format!(
                "label key prefix {p:?} must be a lowercase DNS subdomain of at most 253 characters"
            ));
        }
    }
    check_name_part(name, "label key name", false)
}

fn check_value(v: &str) -> Result<(), String> {
    check_name_part(v, "label value", true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn sel(ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>) -> Selector {
        Selector::compile(&LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!me.is_empty()).then_some(me),
        })
        .unwrap()
    }

    #[test]
    fn match_labels_require_every_pair() {
        let s = sel(&[("a", "1"), ("b", "2")], vec![]);
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!s.matches(&labels(&[("a", "1")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "3")])));
    }

    #[test]
    fn each_operator_means_what_kubernetes_means() {
        let with = labels(&[("app", "webpod")]);
        let other = labels(&[("app", "db")]);
        let none = labels(&[]);
        let in_ = sel(&[], vec![expr("app", "In", &["webpod", "x"])]);
        assert!(in_.matches(&with) && !in_.matches(&other) && !in_.matches(&none));
        let notin = sel(&[], vec![expr("app", "NotIn", &["webpod"])]);
        assert!(!notin.matches(&with) && notin.matches(&other) && notin.matches(&none));
        let exists = sel(&[], vec![expr("app", "Exists", &[])]);
        assert!(exists.matches(&with) && exists.matches(&other) && !exists.matches(&none));
        let dne = sel(&[], vec![expr("app", "DoesNotExist", &[])]);
        assert!(!dne.matches(&with) && dne.matches(&none));
    }

    #[test]
    fn an_empty_selector_matches_everything_and_nil_depends_on_the_field() {
        let empty = Selector::compile(&LabelSelector::default()).unwrap();
        assert!(empty.matches(&labels(&[])) && empty.is_everything());
        let all = Selector::compile_optional(None, WhenNil::Everything).unwrap();
        assert!(all.matches(&labels(&[])));
        let none = Selector::compile_optional(None, WhenNil::Nothing).unwrap();
        assert!(!none.matches(&labels(&[("a", "b")])) && none.is_nothing());
    }

    #[test]
    fn service_pseudo_labels_match_and_win_over_real_labels() {
        let own = labels(&[("app", "webpod"), (SERVICE_NAME_LABEL, "spoofed")]);
        let l = WithPseudoLabels::service(Some(&own), "default", "webpod");
        let by_name = sel(&[(SERVICE_NAME_LABEL, "webpod")], vec![]);
        let by_ns = sel(
            &[],
            vec![expr(SERVICE_NAMESPACE_LABEL, "In", &["default", "prod"])],
        );
        assert!(by_name.matches(&l) && by_ns.matches(&l));
        assert!(!sel(&[(SERVICE_NAME_LABEL, "spoofed")], vec![]).matches(&l));
        assert_eq!(l.get("app"), Some("webpod"));
        let unlabelled = WithPseudoLabels::service(None, "kube-system", "dns");
        assert!(sel(&[(SERVICE_NAMESPACE_LABEL, "kube-system")], vec![]).matches(&unlabelled));
    }

    #[test]
    fn pod_ip_pool_pseudo_labels_match() {
        let l = WithPseudoLabels::pod_ip_pool(None, "", "blue");
        assert!(sel(&[(POD_IP_POOL_NAME_LABEL, "blue")], vec![]).matches(&l));
        assert!(sel(&[], vec![expr(POD_IP_POOL_NAMESPACE_LABEL, "Exists", &[])]).matches(&l));
    }

    #[test]
    fn invalid_selectors_say_where_and_why() {
        let bad = |me: Vec<LabelSelectorRequirement>| {
            Selector::compile(&LabelSelector {
                match_labels: None,
                match_expressions: Some(me),
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(vec![expr("app", "Equals", &["x"])]),
            "matchExpressions[0].operator: \"Equals\" is not a valid operator (In, NotIn, Exists, DoesNotExist)"
        );
        assert_eq!(
            bad(vec![expr("a", "Exists", &[]), expr("app", "In", &[])]),
            "matchExpressions[1].values: must not be empty for operator In"
        );
        assert_eq!(
            bad(vec![expr("app", "Exists", &["x"])]),
            "matchExpressions[0].values: must be empty for operator Exists"
        );
        assert!(bad(vec![expr("bad key", "Exists", &[])]).starts_with("matchExpressions[0].key"));
        assert!(bad(vec![expr("Example.com/x", "Exists", &[])]).contains("prefix"));
        assert!(bad(vec![expr("a", "In", &["-x"])]).starts_with("matchExpressions[0].values[0]"));
        let ml = Selector::compile(&LabelSelector {
            match_labels: Some(labels(&[("a", "has space")])),
            match_expressions: None,
        })
        .unwrap_err();
        assert_eq!(ml.path, "matchLabels[\"a\"]");
        assert_eq!(
            ml.under("spec.serviceSelector"),
            format!("spec.serviceSelector.{ml}")
        );
    }

    #[test]
    fn qualified_keys_and_empty_values_are_accepted() {
        let s = sel(
            &[("kubernetes.io/hostname", "")],
            vec![expr("io.kubernetes.service.name", "In", &["a.b-c_d"])],
        );
        assert!(s.matches(&labels(&[
            ("kubernetes.io/hostname", ""),
            ("io.kubernetes.service.name", "a.b-c_d")
        ])));
    }

    #[test]
    fn display_uses_kubectl_notation() {
        let s = sel(
            &[("a", "1")],
            vec![
                expr("b", "In", &["x", "y"]),
                expr("c", "NotIn", &["z"]),
                expr("d", "Exists", &[]),
                expr("e", "DoesNotExist", &[]),
            ],
        );
        assert_eq!(s.to_string(), "a=1,b in (x,y),c notin (z),d,!e");
        assert_eq!(Selector::nothing().to_string(), "<none>");
    }
}
