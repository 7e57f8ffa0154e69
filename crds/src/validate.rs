//! Validation: what Cilium's CRD schemas and CEL rules (and the API server's own checks) would
//! reject, so that a manifest directory gets the same answers a cluster would give.
//!
//! Every message names the object, the field path and the rule, one line per problem:
//! `CiliumBGPPeerConfig cilium-peer: spec.timers.keepAliveTimeSeconds (30) must not exceed
//! holdTimeSeconds (9)`. Callers report invalid objects and skip them; one bad object never
//! stops the others.
//!
//! Selector contents (operators, keys, values) are *not* checked here: Kubernetes accepts them on
//! admission and the consumer reports them as a status condition (see [`crate::selector`]).

use std::fmt;
use std::net::IpAddr;

/// One problem in one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the object root: `spec.bgpInstances[0].peers[1].peerAddress`.
    pub path: String,
    /// The offending value, when there is one to show.
    pub value: Option<String>,
    /// The rule broken, phrased to follow the path: `must be between 1 and 65535`.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(v) = &self.value {
            write!(f, " ({v})")?;
        }
        write!(f, " {}", self.rule)
    }
}

/// An object that failed validation: every problem found, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct InvalidObject {
    /// `CiliumBGPPeerConfig`, ...
    pub kind: String,
    /// `name` or `namespace/name`.
    pub name: String,
    /// What is wrong, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{} {}: {e}", self.kind, self.name)?;
        }
        Ok(())
    }
}

/// A resource that can check itself.
pub trait Validate {
    /// Appends every problem found to `errors`.
    fn validate_into(&self, errors: &mut Errors);

    /// Runs the checks; `Err` lists every problem.
    fn validate(&self) -> Result<(), InvalidObject>
    where
        Self: kube::Resource,
        <Self as kube::Resource>::DynamicType: Default,
    {
        let mut errors = Errors::default();
        self.validate_into(&mut errors);
        if errors.list.is_empty() {
            return Ok(());
        }
        let meta = self.meta();
        let name = match (&meta.namespace, &meta.name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.clone(),
            _ => "(unnamed)".to_string(),
        };
        Err(InvalidObject {
            kind: Self::kind(&Default::default()).into_owned(),
            name,
            errors: errors.list,
        })
    }
}

/// Collects field errors; the helpers phrase the common rules the same way everywhere.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<FieldError>,
}

impl Errors {
    /// The problems collected so far.
    pub fn list(&self) -> &[FieldError] {
        &self.list
    }

    /// Records a problem.
    pub fn push(
        &mut self,
        path: impl Into<String>,
        value: Option<String>,
        rule: impl Into<String>,
    ) {
        self.list.push(FieldError {
            path: path.into(),
            value,
            rule: rule.into(),
        });
    }

    /// `path (v) must be between min and max` unless `min <= v <= max`.
    pub fn range<T>(&mut self, path: impl fmt::Display, v: Option<T>, min: T, max: T)
    where
        T: PartialOrd + fmt::Display + Copy,
    {
        if let Some(v) = v
            && (v < min || v > max)
        {
            self.push(
                path.to_string(),
                Some(v.to_string()),
                format!("must be between {min} and {max}"),
            );
        }
    }

    /// `path (len) must have between min and max characters`.
    pub fn length(&mut self, path: impl fmt::Display, v: &str, min: usize, max: usize) {
        let n = v.chars().count();
        if n < min || n > max {
            let rule = if min == max {
                format!("must have exactly {min} characters")
            } else if n < min && min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must have between {min} and {max} characters")
            };
            self.push(path.to_string(), Some(format!("{v:?}")), rule);
        }
    }

    /// `path (v) must be an IPv4 or IPv6 address`; returns the address when it is one.
    pub fn ip(&mut self, path: impl fmt::Display, v: &str) -> Option<IpAddr> {
        match v.trim().parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    path.to_string(),
                    Some(format!("{v:?}")),
                    "must be an IPv4 or IPv6 address",
                );
                None
            }
        }
    }

    /// `path (v) must be an IPv4 address`.
    pub fn ipv4(&mut self, path: impl fmt::Display, v: &str) {
        if v.trim().parse::<std::net::Ipv4Addr>().is_err() {
            self.push(
                path.to_string(),
                Some(format!("{v:?}")),
                "must be an IPv4 address",
            );
        }
    }

    /// `path[i].key (name) must be unique` for repeated names in a list keyed by name.
    pub fn unique_names<'a>(
        &mut self,
        path: impl fmt::Display,
        key: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in names.into_iter().enumerate() {
            if !seen.insert(n) {
                self.push(
                    format!("{path}[{i}].{key}"),
                    Some(n.to_string()),
                    format!("must be unique: an earlier entry has the same {key}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_error_reads_path_value_rule() {
        let e = FieldError {
            path: "spec.timers.keepAliveTimeSeconds".into(),
            value: Some("30".into()),
            rule: "must not exceed holdTimeSeconds (9)".into(),
        };
        assert_eq!(
            e.to_string(),
            "spec.timers.keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9)"
        );
    }

    #[test]
    fn range_checks_report_only_values_outside() {
        let mut e = Errors::default();
        e.range("a", Some(5), 1, 10);
        e.range("b", None::<i32>, 1, 10);
        e.range("c", Some(0), 1, 10);
        assert_eq!(e.list().len(), 1);
        assert_eq!(e.list()[0].to_string(), "c (0) must be between 1 and 10");
    }

    #[test]
    fn repeated_names_are_reported_at_the_second_occurrence() {
        let mut e = Errors::default();
        e.unique_names("spec.bgpInstances", "name", ["a", "b", "a"]);
        assert_eq!(e.list().len(), 1);
        assert_eq!(e.list()[0].path, "spec.bgpInstances[2].name");
    }
}
