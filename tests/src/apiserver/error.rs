//! Failures as the API server reports them: a `Status` object (`kind: Status`) with the HTTP
//! code, a machine-readable reason and a message worded as kube-apiserver words it, because
//! clients (kube-rs `Error::Api`, kubectl, client-go) branch on `code` and `reason`.

use serde_json::{Value, json};

/// An error response: serialised as a `v1 Status` with `status: Failure`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status code, also written to `code`.
    pub code: u16,
    /// The `StatusReason` (`NotFound`, `Conflict`, `Expired`, ...).
    pub reason: String,
    /// The human-readable message.
    pub message: String,
    /// `details`: name, group, kind (the resource) and causes, when known.
    pub details: Option<Value>,
    /// Seconds a client should wait (`Retry-After` and `details.retryAfterSeconds`).
    pub retry_after: Option<u32>,
}

/// What an error is about, for `details` and messages: `services "web"` in group "".
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// The reason kube-apiserver uses for a bare HTTP code, for injected faults.
    pub fn reason_for_code(code: u16) -> &'static str {
        match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        }
    }

    fn with_target(mut self, t: Target<'_>) -> Self {
        let mut d = serde_json::Map::new();
        if !t.name.is_empty() {
            d.insert("name".into(), json!(t.name));
        }
        if !t.group.is_empty() {
            d.insert("group".into(), json!(t.group));
        }
        d.insert("kind".into(), json!(t.resource));
        self.details = Some(Value::Object(d));
        self
    }

    /// `services "web" not found`.
    pub fn not_found(t: Target<'_>) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", qualified(t), t.name),
        )
        .with_target(t)
    }

    /// `services "web" already exists`.
    pub fn already_exists(t: Target<'_>) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(t), t.name),
        )
        .with_target(t)
    }

    /// The optimistic-concurrency failure: a stale `resourceVersion`.
    pub fn conflict(t: Target<'_>) -> Self {
        Self::conflict_because(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Operation cannot be fulfilled on services "web": WHY`.
    pub fn conflict_because(t: Target<'_>, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                qualified(t),
                t.name
            ),
        )
        .with_target(t)
    }

    /// A validation failure (422) with one cause per field, as `field.ErrorList` reports it.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(String, String)]) -> Self {
        let summary: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = match summary.as_slice() {
            [one] => format!("{kind} \"{name}\" is invalid: {one}"),
            many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert("causes".into(), Value::Array(causes));
        let mut e = Self::new(422, "Invalid", message);
        e.details = Some(Value::Object(d));
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml ({accept})"
            ),
        )
    }

    /// A watch or list from a compacted resourceVersion: HTTP 410, reason `Expired`.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object a client receives.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            if let Some(m) = d.as_object_mut() {
                m.insert("retryAfterSeconds".into(), json!(secs));
            }
        }
        if let (Some(d), Some(m)) = (details, s.as_object_mut()) {
            m.insert("details".into(), d);
        }
        s
    }
}

/// `services` or `customresourcedefinitions.apiextensions.k8s.io`, as messages name resources.
fn qualified(t: Target<'_>) -> String {
    if t.group.is_empty() {
        t.resource.to_string()
    } else {
        format!("{}.{}", t.resource, t.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_worded_and_detailed_as_kube_apiserver_does() {
        let e = ApiError::not_found(Target {
            group: "cilium.io",
            resource: "ciliumloadbalancerippools",
            name: "blue",
        });
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(
            s["message"],
            "ciliumloadbalancerippools.cilium.io \"blue\" not found"
        );
        assert_eq!(s["details"]["kind"], "ciliumloadbalancerippools");
        assert_eq!(s["details"]["group"], "cilium.io");
    }

    #[test]
    fn a_kube_client_parses_the_status_it_is_sent() {
        let mut e = ApiError::conflict(Target {
            group: "",
            resource: "services",
            name: "web",
        });
        e.retry_after = Some(3);
        let parsed: kube::core::Status = serde_json::from_value(e.to_status()).unwrap();
        assert_eq!(parsed.code, 409);
        assert_eq!(parsed.reason, "Conflict");
        assert!(
            parsed
                .message
                .starts_with("Operation cannot be fulfilled on services \"web\"")
        );
        assert_eq!(parsed.details.unwrap().retry_after_seconds, 3);
    }

    #[test]
    fn one_invalid_field_is_named_in_the_message() {
        let e = ApiError::invalid(
            "Service",
            "",
            "web",
            &[("metadata.name".into(), "Required value".into())],
        );
        assert_eq!(
            e.message,
            "Service \"web\" is invalid: metadata.name: Required value"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "metadata.name"
        );
    }
}
