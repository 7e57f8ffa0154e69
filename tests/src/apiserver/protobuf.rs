//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed generators send:
//! `kubectl create namespace`, `create configmap` and `create secret ...` encode their object
//! as protobuf (the `k8s\0` envelope around a `runtime.Unknown`), and client-go does not fall
//! back to JSON. Those three kinds are decoded into JSON; anything else is refused (415) with a
//! message saying to use `kubectl apply -f`. Field numbers are those of k8s.io/api's
//! `generated.proto`.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// The content type client-go uses for protobuf.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the test API server decodes protobuf only for v1 Namespace, ConfigMap and Secret, not {what} \
             (use `kubectl apply -f` or `kubectl create -f`)"
        ),
    )
}

fn malformed(why: &str) -> ApiError {
    ApiError::bad_request(format!("malformed protobuf body: {why}"))
}

/// A protobuf field's value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        if n > self.buf.len() {
            return Err(malformed("length past the end"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field number and value, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n =
                    usize::try_from(self.varint()?).map_err(|_| malformed("length too large"))?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return Err(malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ApiError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.field()? {
        out.push(f);
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

/// A `map<string, string>` or `map<string, bytes>` entry: key 1, value 2.
fn entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut key = String::new();
    let mut value = json!("");
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(k)) => key = text(k)?,
            (2, Wire::Bytes(v)) if bytes_value => {
                value =
                    serde_json::to_value(k8s_openapi::ByteString(v.to_vec())).unwrap_or(Value::Null)
            }
            (2, Wire::Bytes(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(
    m: &mut Map<String, Value>,
    field: &str,
    b: &[u8],
    bytes_value: bool,
) -> Result<(), ApiError> {
    let (k, v) = entry(b, bytes_value)?;
    if let Some(map) = m
        .entry(field.to_string())
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        map.insert(k, v);
    }
    Ok(())
}

fn push(m: &mut Map<String, Value>, field: &str, v: Value) {
    if let Some(a) = m
        .entry(field.to_string())
        .or_insert_with(|| json!([]))
        .as_array_mut()
    {
        a.push(v);
    }
}

/// `ObjectMeta`, the fields a create uses (server-set ones are ignored anyway).
fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(v)) => {
                m.insert("name".into(), json!(text(v)?));
            }
            (2, Wire::Bytes(v)) => {
                m.insert("generateName".into(), json!(text(v)?));
            }
            (3, Wire::Bytes(v)) => {
                m.insert("namespace".into(), json!(text(v)?));
            }
            (6, Wire::Bytes(v)) => {
                m.insert("resourceVersion".into(), json!(text(v)?));
            }
            (11, Wire::Bytes(v)) => insert_entry(&mut m, "labels", v, false)?,
            (12, Wire::Bytes(v)) => insert_entry(&mut m, "annotations", v, false)?,
            (13, Wire::Bytes(v)) => push(&mut m, "ownerReferences", owner_reference(v)?),
            (14, Wire::Bytes(v)) => push(&mut m, "finalizers", json!(text(v)?)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn owner_reference(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    for (n, w) in fields(b)? {
        let key = match n {
            1 => "kind",
            3 => "name",
            4 => "uid",
            5 => "apiVersion",
            6 => "controller",
            7 => "blockOwnerDeletion",
            _ => continue,
        };
        let v = match w {
            Wire::Bytes(v) => json!(text(v)?),
            Wire::Varint(x) => json!(x != 0),
            Wire::Fixed => continue,
        };
        m.insert(key.into(), v);
    }
    Ok(Value::Object(m))
}

/// The JSON object a protobuf request body encodes.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("no k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, w) in fields(inner)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (tn, tw) in fields(tm)? {
                    match (tn, tw) {
                        (1, Wire::Bytes(v)) => api_version = text(v)?,
                        (2, Wire::Bytes(v)) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let body_fields = fields(raw)?;
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            for (n, w) in body_fields {
                match (n, w) {
                    (1, Wire::Bytes(v)) => {
                        obj.insert("metadata".into(), object_meta(v)?);
                    }
                    (2, Wire::Bytes(spec)) => {
                        let mut s = Map::new();
                        for (sn, sw) in fields(spec)? {
                            if let (1, Wire::Bytes(f)) = (sn, sw) {
                                push(&mut s, "finalizers", json!(text(f)?));
                            }
                        }
                        obj.insert("spec".into(), Value::Object(s));
                    }
                    _ => {}
                }
            }
        }
        ("v1", "ConfigMap") => {
            for (n, w) in body_fields {
                match (n, w) {
                    (1, Wire::Bytes(v)) => {
                        obj.insert("metadata".into(), object_meta(v)?);
                    }
                    (2, Wire::Bytes(v)) => insert_entry(&mut obj, "data", v, false)?,
                    (3, Wire::Bytes(v)) => insert_entry(&mut obj, "binaryData", v, true)?,
                    (4, Wire::Varint(x)) => {
                        obj.insert("immutable".into(), json!(x != 0));
                    }
                    _ => {}
                }
            }
        }
        ("v1", "Secret") => {
            for (n, w) in body_fields {
                match (n, w) {
                    (1, Wire::Bytes(v)) => {
                        obj.insert("metadata".into(), object_meta(v)?);
                    }
                    (2, Wire::Bytes(v)) => insert_entry(&mut obj, "data", v, true)?,
                    (3, Wire::Bytes(v)) => {
                        obj.insert("type".into(), json!(text(v)?));
                    }
                    (4, Wire::Bytes(v)) => insert_entry(&mut obj, "stringData", v, false)?,
                    (5, Wire::Varint(x)) => {
                        obj.insert("immutable".into(), json!(x != 0));
                    }
                    _ => {}
                }
            }
        }
        _ => return Err(unsupported(&format!("{api_version} {kind}"))),
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint((n << 3) | 2, &mut out);
        varint(b.len() as u64, &mut out);
        out.extend_from_slice(b);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [bytes(1, api_version.as_bytes()), bytes(2, kind.as_bytes())].concat();
        let unknown = [bytes(1, &tm), bytes(2, raw)].concat();
        [MAGIC.to_vec(), unknown].concat()
    }

    #[test]
    fn a_secret_from_kubectl_create_secret_decodes_to_json() {
        let label = [bytes(1, b"app"), bytes(2, b"bgp")].concat();
        let meta = [
            bytes(1, b"bgp-auth"),
            bytes(3, b"kube-system"),
            bytes(11, &label),
        ]
        .concat();
        let data = [bytes(1, b"password"), bytes(2, b"s3cret")].concat();
        let raw = [bytes(1, &meta), bytes(2, &data), bytes(3, b"Opaque")].concat();
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"password": "czNjcmV0"},
                   "metadata": {"name": "bgp-auth", "namespace": "kube-system", "labels": {"app": "bgp"}}})
        );
    }

    #[test]
    fn other_kinds_are_refused_with_a_way_out() {
        let e = decode(&envelope("apps/v1", "Deployment", &[])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("kubectl apply -f"));
    }

    #[test]
    fn truncated_bodies_are_bad_requests_not_panics() {
        let full = envelope("v1", "ConfigMap", &bytes(1, &bytes(1, b"cfg")));
        for n in 0..full.len() {
            if let Err(e) = decode(&full[..n]) {
                assert!(e.code == 400 || e.code == 415, "{n}: {e}");
            }
        }
        assert_eq!(decode(&full).unwrap()["metadata"]["name"], "cfg");
    }
}
