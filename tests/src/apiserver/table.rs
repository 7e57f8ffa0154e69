//! Server-side printing: the `meta.k8s.io/v1 Table` kubectl asks for (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io`) in `kubectl get` and `get -w`. Columns come
//! from a CRD's `additionalPrinterColumns` (a JSONPath subset) or, for built-ins, a few
//! fixed columns in kubectl's style.

use serde_json::{Value, json};

/// A column after `Name`.
#[derive(Clone)]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    value: ColumnValue,
}

#[derive(Clone)]
enum ColumnValue {
    Path(String),
    Computed(fn(&Value) -> Value),
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match &self.value {
            ColumnValue::Path(p) => p.as_str(),
            ColumnValue::Computed(_) => "<computed>",
        };
        write!(f, "Column({} {} {v})", self.name, self.kind)
    }
}

impl Column {
    /// A column read with a JSONPath (`.spec.type`).
    pub fn path(name: &str, kind: &str, json_path: &str) -> Self {
        Column {
            name: name.to_string(),
            kind: kind.to_string(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            value: ColumnValue::Path(json_path.to_string()),
        }
    }

    /// A column computed from the object (kubectl's EXTERNAL-IP and PORT(S)).
    pub fn computed(name: &str, kind: &str, f: fn(&Value) -> Value) -> Self {
        Column {
            name: name.to_string(),
            kind: kind.to_string(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            value: ColumnValue::Computed(f),
        }
    }

    /// `Age`, from `creationTimestamp`; kubectl renders dates as ages.
    pub fn age() -> Self {
        Column::path("Age", "date", ".metadata.creationTimestamp")
    }

    /// A CRD `additionalPrinterColumns` entry.
    pub fn from_crd(c: &Value) -> Option<Self> {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut col = Column::path(&s("name"), &s("type"), &s("jsonPath"));
        if col.name.is_empty() {
            return None;
        }
        col.format = s("format");
        col.description = s("description");
        col.priority = c.get("priority").and_then(Value::as_i64).unwrap_or(0);
        Some(col)
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    fn cell(&self, obj: &Value) -> Value {
        let found = match &self.value {
            ColumnValue::Computed(f) => return f(obj),
            ColumnValue::Path(p) => json_path(obj, p),
        };
        let typed = |v: &Value| -> Value {
            match (self.kind.as_str(), v) {
                ("date", Value::String(s)) => json!(age(s)),
                ("integer" | "number", Value::Number(_)) | ("boolean", Value::Bool(_)) => v.clone(),
                (_, Value::String(_)) => v.clone(),
                (_, other) => json!(other.to_string()),
            }
        };
        match found.as_slice() {
            [] => Value::Null,
            [one] => typed(one),
            many => {
                let parts: Vec<String> = many
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                json!(parts.join(","))
            }
        }
    }
}

/// How long ago an RFC 3339 time was, as kubectl shows ages (`45s`, `3m20s`, `5h`, `12d`,
/// `2y30d`); the server renders date columns so, as kube-apiserver does.
pub fn age(rfc3339: &str) -> String {
    let Ok(t) = rfc3339.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    human_duration(secs)
}

fn human_duration(secs: i64) -> String {
    let with = |big: i64, unit: &str, small: i64, sunit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{sunit}")
        }
    };
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => with(m, "m", secs % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => with(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => with(d, "d", h % 24, "h"),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => with(d / 365, "y", d % 365, "d"),
        _ => format!("{}y", d / 365),
    }
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table for `objects`, with or without column definitions (watch events after the first
/// carry none, as kube-apiserver sends them).
pub fn table(
    columns: &[Column],
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
    with_definitions: bool,
) -> Value {
    let mut defs = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    })];
    defs.extend(columns.iter().map(Column::definition));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(columns.iter().map(|c| c.cell(o)));
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = o.clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "rows": rows,
    });
    if with_definitions {
        t["columnDefinitions"] = Value::Array(defs);
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// Whether an `Accept` header asks for metadata only (`as=PartialObjectMetadata` or
/// `as=PartialObjectMetadataList`: kube's `get_metadata`, `list_metadata`, `metadata_watcher`).
pub fn wants_metadata(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// An object reduced to a `meta.k8s.io/v1 PartialObjectMetadata`.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The values a JSONPath expression selects: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`, optionally inside `{}`. Missing keys select nothing.
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut current = vec![obj.clone()];
    for step in steps(p) {
        let mut next = Vec::new();
        for v in &current {
            match &step {
                Step::Field(f) => next.extend(v.get(f.as_str()).cloned()),
                Step::Index(i) => next.extend(v.as_array().and_then(|a| a.get(*i)).cloned()),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter().cloned()),
                    Value::Object(m) => next.extend(m.values().cloned()),
                    _ => {}
                },
                Step::Filter(k, want) => next.extend(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| {
                            let got = json_path(e, k);
                            got.first().is_some_and(|g| match g {
                                Value::String(s) => s == want,
                                other => want.parse::<Value>().is_ok_and(|w| w == *other),
                            })
                        })
                        .cloned(),
                ),
            }
        }
        current = next;
    }
    current
}

#[derive(Debug)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.k=="v")]`: the relative path and the wanted value.
    Filter(String, String),
}

fn steps(p: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let (field, tail) = r.split_at(end);
            if !field.is_empty() {
                out.push(if field == "*" {
                    Step::All
                } else {
                    Step::Field(field.to_string())
                });
            }
            rest = tail;
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = if r.starts_with("?(") {
                r.find(")]").map(|i| i + 1)
            } else {
                r.find(']')
            };
            let Some(close) = close else { break };
            let (inner, tail) = r.split_at(close);
            rest = tail.strip_prefix(']').unwrap_or(tail);
            if inner == "*" {
                out.push(Step::All);
            } else if let Ok(i) = inner.parse::<usize>() {
                out.push(Step::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(@").and_then(|x| x.strip_suffix(')')) {
                if let Some((k, v)) = f.split_once("==") {
                    let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                    out.push(Step::Filter(k.trim().to_string(), v.to_string()));
                }
            } else {
                let key = inner.trim_matches(|c| c == '"' || c == '\'');
                out.push(Step::Field(key.to_string()));
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (field, tail) = rest.split_at(end);
            out.push(Step::Field(field.to_string()));
            rest = tail;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_reads_fields_indexes_and_filters() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]},
            "spec": {"items": [{"n": 1}, {"n": 2}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&o, ".spec.items[1].n"), vec![json!(2)]);
        assert_eq!(
            json_path(&o, "{.spec.items[*].n}"),
            vec![json!(1), json!(2)]
        );
        assert!(json_path(&o, ".spec.missing.deeper").is_empty());
    }

    #[test]
    fn a_table_has_a_name_column_then_the_type_columns() {
        let cols = vec![
            Column::path("Disabled", "boolean", ".spec.disabled"),
            Column::age(),
        ];
        let objs = vec![
            json!({"metadata": {"name": "blue", "creationTimestamp": "2025-01-01T00:00:00Z"},
                                "spec": {"disabled": false}}),
        ];
        let t = table(
            &cols,
            &objs,
            IncludeObject::Metadata,
            json!({"resourceVersion": "7"}),
            true,
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 3);
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells[..2], [json!("blue"), json!(false)]);
        assert!(
            cells[2].as_str().unwrap().ends_with('d'),
            "an age in days: {cells:?}"
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86_400, "3d"),
            (100 * 86_400, "100d"),
            (800 * 86_400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn only_an_accept_header_that_prefers_tables_gets_one() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
