//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`) and field
//! selectors (`metadata.name=x`, `spec.unschedulable!=true`), with kube-apiserver's rule that a
//! field label a type does not support is a 400.

use serde_json::Value;

use super::error::ApiError;
use super::registry::ResourceType;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Req>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |why: &str| {
            ApiError::bad_request(format!("unable to parse requirement: {why} in \"{s}\""))
        };
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(Req::NotExists(valid_key(k.trim()).map_err(|e| bad(&e))?));
                continue;
            }
            if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Req::Ne(
                    valid_key(k.trim()).map_err(|e| bad(&e))?,
                    v.trim().to_string(),
                ));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(Req::Eq(
                    valid_key(k.trim()).map_err(|e| bad(&e))?,
                    v.trim().to_string(),
                ));
            } else if let Some((k, set)) = split_set_op(part, " notin ") {
                reqs.push(Req::NotIn(
                    valid_key(k).map_err(|e| bad(&e))?,
                    parse_set(set).map_err(|e| bad(&e))?,
                ));
            } else if let Some((k, set)) = split_set_op(part, " in ") {
                reqs.push(Req::In(
                    valid_key(k).map_err(|e| bad(&e))?,
                    parse_set(set).map_err(|e| bad(&e))?,
                ));
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad("the value of > must be an integer"))?;
                reqs.push(Req::Gt(valid_key(k.trim()).map_err(|e| bad(&e))?, n));
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad("the value of < must be an integer"))?;
                reqs.push(Req::Lt(valid_key(k.trim()).map_err(|e| bad(&e))?, n));
            } else {
                reqs.push(Req::Exists(valid_key(part).map_err(|e| bad(&e))?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Req::NotIn(k, set) => get(k).is_none_or(|x| !set.iter().any(|s| s == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

fn split_set_op<'a>(part: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (k, rest) = part.split_once(op)?;
    Some((k.trim(), rest.trim()))
}

fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| "a set must be in parentheses".to_string())?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(k: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key \"{k}\""))
    }
}

/// A parsed `fieldSelector`: `label=value`, `label==value`, `label!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks every label against what the type supports.
    pub fn parse(s: &str, t: &ResourceType) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: \"{part}\": no operator; expected =, == or !="
                )));
            };
            let label = label.trim();
            if !t.field_label_supported(label) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {label}"
                )));
            }
            reqs.push((label.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// The single name `metadata.name=x` pins, if any (for watches on one object).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(l, eq, _)| *eq && l == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(label, eq, want)| {
            let got = field_value(obj, label);
            (got == *want) == *eq
        })
    }
}

/// A field's value as a selector compares it: strings as they are, other scalars printed,
/// missing as "".
fn field_value(obj: &Value, label: &str) -> String {
    let mut v = obj;
    for part in label.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "spec": {"unschedulable": true}})
    }

    #[test]
    fn equality_set_and_existence_requirements_all_have_to_hold() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web"));
        assert!(m("app==web,tier!=back"));
        assert!(m("app in (web, api),tier notin (back)"));
        assert!(m("tier,!missing"));
        assert!(m("n>4,n<6"));
        assert!(!m("app=api"));
        assert!(!m("app,missing"));
        assert!(!m("tier notin (front)"));
        assert!(m(""));
    }

    #[test]
    fn a_malformed_label_selector_is_a_bad_request() {
        let e = LabelSelector::parse("app in web").unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn field_selectors_compare_names_namespaces_and_supported_fields() {
        let nodes = super::super::registry::Registry::builtin();
        let t = nodes.get("", "nodes").unwrap();
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=a", t)
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("spec.unschedulable=true", t)
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a", t)
                .unwrap()
                .matches(&o)
        );
        let e = FieldSelector::parse("spec.podCIDR=x", t).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: spec.podCIDR")
        );
    }
}
