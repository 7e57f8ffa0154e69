//! Test hooks: injected faults, outages and the request log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;

/// What a request does, as RBAC names verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    #[serde(rename = "deletecollection")]
    DeleteCollection,
}

impl Verb {
    pub fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// The resource a request addresses, for matching faults and reading the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// How a fault answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultResponse {
    /// An error `Status` with this code, reason and message.
    Status {
        code: u16,
        reason: String,
        message: String,
        retry_after: Option<u32>,
    },
    /// The connection is dropped without a response.
    Reset,
}

/// An injected fault: the next `times` requests that match get `response` instead of being
/// served. Unset matchers match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub verb: Option<Verb>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    /// `Some("")` matches only the main resource, `Some("status")` only the status.
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub response: FaultResponse,
    #[serde(default = "one")]
    pub times: usize,
}

fn one() -> usize {
    1
}

impl Fault {
    /// One request answered with an error of this HTTP code (reason as kube-apiserver
    /// names it; 429 and 503 carry `Retry-After: 1`).
    pub fn status(code: u16) -> Self {
        let retry_after = matches!(code, 429 | 503).then_some(1);
        Fault {
            verb: None,
            group: None,
            resource: None,
            subresource: None,
            namespace: None,
            name: None,
            response: FaultResponse::Status {
                code,
                reason: ApiError::reason_for_code(code).to_string(),
                message: format!("injected fault ({code})"),
                retry_after,
            },
            times: 1,
        }
    }

    /// One request whose connection is dropped.
    pub fn reset() -> Self {
        Fault {
            response: FaultResponse::Reset,
            ..Fault::status(500)
        }
    }

    pub fn verb(mut self, v: Verb) -> Self {
        self.verb = Some(v);
        self
    }

    /// The plural resource name (`services`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    pub fn group(mut self, g: &str) -> Self {
        self.group = Some(g.to_string());
        self
    }

    /// `""` for the main resource only, `"status"` for the status subresource only.
    pub fn subresource(mut self, s: &str) -> Self {
        self.subresource = Some(s.to_string());
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    pub fn name(mut self, n: &str) -> Self {
        self.name = Some(n.to_string());
        self
    }

    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    pub fn message(mut self, m: &str) -> Self {
        if let FaultResponse::Status { message, .. } = &mut self.response {
            *message = m.to_string();
        }
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        if let FaultResponse::Status { retry_after, .. } = &mut self.response {
            *retry_after = Some(secs);
        }
        self
    }

    fn matches(&self, verb: Option<Verb>, t: Option<&Target>) -> bool {
        let opt = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        if self.verb.is_some() && self.verb != verb {
            return false;
        }
        let Some(t) = t else {
            return self.group.is_none() && self.resource.is_none() && self.name.is_none();
        };
        opt(&self.group, Some(&t.group))
            && opt(&self.resource, Some(&t.resource))
            && opt(
                &self.subresource,
                Some(t.subresource.as_deref().unwrap_or("")),
            )
            && opt(&self.namespace, t.namespace.as_deref())
            && opt(&self.name, t.name.as_deref())
    }
}

/// How the server behaves during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageMode {
    /// Connections are dropped (in process: the service returns a connection error).
    Refuse,
    /// Requests wait until the outage ends, then are served.
    Hang,
    /// Requests get 503 ServiceUnavailable.
    Unavailable,
}

/// What happened to a logged request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Served,
    /// Answered by an injected fault.
    Injected,
    /// Dropped by an outage or a `Reset` fault.
    Refused,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
    /// `?fieldManager=`.
    pub field_manager: Option<String>,
    pub verb: Option<Verb>,
    pub target: Option<Target>,
    /// The body, parsed (JSON or YAML); `None` when empty.
    pub body: Option<Value>,
    /// The response's HTTP code (0 when refused).
    pub status: u16,
    pub outcome: Outcome,
}

impl RecordedRequest {
    pub fn query_param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_write(&self) -> bool {
        self.verb.is_some_and(Verb::is_write)
    }

    /// The plural resource, `""` when the request was not for a resource.
    pub fn resource(&self) -> &str {
        self.target.as_ref().map_or("", |t| t.resource.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Outage {
    pub mode: OutageMode,
    pub until: Option<Instant>,
}

/// Hook state, behind its own lock.
#[derive(Debug)]
pub(super) struct Hooks {
    pub faults: Vec<Fault>,
    pub outage: Option<Outage>,
    pub log: VecDeque<RecordedRequest>,
    pub log_limit: usize,
    pub seq: u64,
}

impl Hooks {
    pub fn new(log_limit: usize) -> Self {
        Hooks {
            faults: Vec::new(),
            outage: None,
            log: VecDeque::new(),
            log_limit,
            seq: 0,
        }
    }

    /// The outage in force now, expiring a timed one that is over.
    pub fn outage(&mut self) -> Option<Outage> {
        if let Some(o) = self.outage
            && o.until.is_some_and(|u| Instant::now() >= u)
        {
            self.outage = None;
        }
        self.outage
    }

    /// Takes one use of the first fault matching this request.
    pub fn take_fault(&mut self, verb: Option<Verb>, t: Option<&Target>) -> Option<FaultResponse> {
        let i = self
            .faults
            .iter()
            .position(|f| f.times > 0 && f.matches(verb, t))?;
        let f = self.faults.get_mut(i)?;
        f.times -= 1;
        let r = f.response.clone();
        if f.times == 0 {
            self.faults.remove(i);
        }
        Some(r)
    }

    pub fn record(&mut self, mut r: RecordedRequest) {
        self.seq += 1;
        r.seq = self.seq;
        self.log.push_back(r);
        while self.log.len() > self.log_limit {
            self.log.pop_front();
        }
    }
}

/// How long until a timed outage ends, for requests that hang.
pub(super) fn remaining(o: &Outage) -> Option<Duration> {
    o.until.map(|u| u.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc_patch() -> Target {
        Target {
            group: String::new(),
            version: "v1".into(),
            resource: "services".into(),
            subresource: Some("status".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
        }
    }

    #[test]
    fn a_fault_is_used_as_many_times_as_asked_then_gone() {
        let mut h = Hooks::new(10);
        h.faults.push(
            Fault::status(409)
                .verb(Verb::Patch)
                .resource("services")
                .subresource("status")
                .times(2),
        );
        let t = svc_patch();
        assert!(h.take_fault(Some(Verb::Get), Some(&t)).is_none());
        assert!(h.take_fault(Some(Verb::Patch), Some(&t)).is_some());
        assert!(h.take_fault(Some(Verb::Patch), Some(&t)).is_some());
        assert!(h.take_fault(Some(Verb::Patch), Some(&t)).is_none());
        assert!(h.faults.is_empty());
    }

    #[test]
    fn an_empty_subresource_matcher_matches_only_the_main_resource() {
        let f = Fault::status(500).subresource("");
        assert!(!f.matches(Some(Verb::Patch), Some(&svc_patch())));
        let main = Target {
            subresource: None,
            ..svc_patch()
        };
        assert!(f.matches(Some(Verb::Patch), Some(&main)));
    }

    #[test]
    fn a_timed_outage_ends_by_itself() {
        let mut h = Hooks::new(10);
        h.outage = Some(Outage {
            mode: OutageMode::Unavailable,
            until: Some(Instant::now()),
        });
        assert!(h.outage().is_none());
    }

    #[test]
    fn the_log_keeps_the_newest_requests() {
        let mut h = Hooks::new(2);
        for m in ["a", "b", "c"] {
            h.record(RecordedRequest {
                seq: 0,
                method: m.into(),
                path: "/".into(),
                query: vec![],
                content_type: None,
                accept: None,
                user_agent: None,
                field_manager: None,
                verb: None,
                target: None,
                body: None,
                status: 200,
                outcome: Outcome::Served,
            });
        }
        let methods: Vec<(&str, u64)> = h.log.iter().map(|r| (r.method.as_str(), r.seq)).collect();
        assert_eq!(methods, vec![("b", 2), ("c", 3)]);
    }
}
