//! An in-memory Kubernetes API server for tests.
//!
//! It stores JSON objects by group, version and resource, serves discovery so kubectl finds
//! them, and implements the verbs clients rely on: list (resourceVersion, selectors,
//! pagination), watch (resourceVersion, bookmarks, 410 for compacted versions), get, create,
//! replace, delete, the four patch types, the status subresource and optimistic concurrency.
//! Applying a CustomResourceDefinition serves its resource. Tests reach it in process as a
//! tower service ([`ApiServer::client`]) or over HTTP ([`ApiServer::start`], the
//! `test-apiserver` binary), and steer it through hooks: injected faults, outages, dropped
//! or expired watches, and a log of every request. See `docs/test-apiserver.md`.

mod defaults;
pub mod error;
mod fields;
pub mod hooks;
mod http;
pub mod mock;
mod openapi;
mod ops;
mod patch;
mod path;
mod protobuf;
mod read;
pub mod registry;
mod selector;
mod store;
mod table;
mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

pub use self::error::ApiError;
pub use self::hooks::{Fault, FaultResponse, OutageMode, Outcome, RecordedRequest, Target, Verb};
use self::hooks::{Hooks, Outage};
pub use self::http::{Running, ServeError, crds_first, documents, kubeconfig};
pub use self::patch::PatchType;
use self::path::{Query, Route};
pub use self::registry::ResourceType;
use self::store::{EndWatch, State};

/// Errors a service call ends with instead of a response (a dropped connection).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Response bodies: whole JSON documents or watch streams.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// How the server behaves; [`Config::default`] suits most tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Changes kept for watches and consistent lists; a watch from a version older than
    /// the window gets 410 Gone.
    pub history_window: usize,
    /// How often watches that asked for bookmarks get one (zero: only on request).
    pub bookmark_interval: Duration,
    /// Requests kept in the log (oldest dropped first).
    pub request_log_limit: usize,
    /// The Kubernetes version `/version` reports (kubectl's dispatcher picks its matching
    /// minor version from it).
    pub version: (u32, u32),
    /// Namespaces that exist from the start.
    pub namespaces: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history_window: 10_000,
            bookmark_interval: Duration::from_secs(2),
            request_log_limit: 100_000,
            version: (1, 32),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Config {
    pub fn history_window(mut self, n: usize) -> Self {
        self.history_window = n;
        self
    }

    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    pub fn version(mut self, major: u32, minor: u32) -> Self {
        self.version = (major, minor);
        self
    }

    pub fn request_log_limit(mut self, n: usize) -> Self {
        self.request_log_limit = n;
        self
    }

    /// The namespaces present at start (replacing the default four).
    pub fn namespaces(mut self, names: &[&str]) -> Self {
        self.namespaces = names.iter().map(|s| s.to_string()).collect();
        self
    }
}

pub(crate) struct Inner {
    state: Mutex<State>,
    hooks: Mutex<Hooks>,
    config: Config,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hooks(&self) -> MutexGuard<'_, Hooks> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle on one server; clones share it.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

impl Default for ApiServer {
    fn default() -> Self {
        ApiServer::new()
    }
}

impl ApiServer {
    pub fn new() -> Self {
        ApiServer::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let mut state = State::new(registry::Registry::builtin(), config.history_window);
        for ns in &config.namespaces {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Err(e) = ops::insert(&mut state, ns) {
                tracing::warn!(error = %e, "could not create a starting namespace");
            }
        }
        let hooks = Hooks::new(config.request_log_limit);
        ApiServer {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                hooks: Mutex::new(hooks),
                config,
            }),
        }
    }

    /// The server as a tower service, for `kube::Client::new` or a hyper connection.
    pub fn service(&self) -> ApiService {
        ApiService {
            server: self.clone(),
        }
    }

    /// A kube client talking to this server in process (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// A kube client in process with the retry layer a kubeconfig-built client has (kube's
    /// `RetryPolicy::server_retry`: 429, 503 and 504 retried, honouring `Retry-After`), so
    /// code under test sees what it would see in a cluster.
    pub fn retrying_client(&self) -> kube::Client {
        let policy = kube::client::retry::RetryPolicy::server_retry();
        let service = tower::ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(policy))
            .service(self.service());
        kube::Client::new(service, "default")
    }

    // ---- hooks ----

    /// Adds a fault; faults are tried in the order added.
    pub fn inject(&self, fault: Fault) {
        self.inner.hooks().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.hooks().faults.clear();
    }

    /// Uses left across all injected faults.
    pub fn pending_faults(&self) -> usize {
        self.inner.hooks().faults.iter().map(|f| f.times).sum()
    }

    /// Starts an outage until [`ApiServer::end_outage`]. Open watches are cut, as a lost
    /// connection would cut them.
    pub fn outage(&self, mode: OutageMode) {
        self.start_outage(mode, None);
    }

    /// An outage that ends by itself after `d`.
    pub fn outage_for(&self, mode: OutageMode, d: Duration) {
        self.start_outage(mode, Some(Instant::now() + d));
    }

    fn start_outage(&self, mode: OutageMode, until: Option<Instant>) {
        self.inner.hooks().outage = Some(Outage { mode, until });
        self.inner.state().end_watches(None, EndWatch::Abort);
        tracing::info!(?mode, "test API server: outage started");
    }

    pub fn end_outage(&self) {
        self.inner.hooks().outage = None;
        tracing::info!("test API server: outage over");
    }

    pub fn in_outage(&self) -> bool {
        self.inner.hooks().outage().is_some()
    }

    /// Ends every open watch cleanly (the client sees the stream end and re-watches).
    /// Returns how many there were.
    pub fn drop_watches(&self) -> usize {
        self.inner.state().end_watches(None, EndWatch::Close)
    }

    /// Ends every open watch with an `ERROR` 410 Expired event (the client must re-list).
    pub fn expire_watches(&self) -> usize {
        self.inner.state().end_watches(None, EndWatch::Expire)
    }

    /// Forgets all history, so any earlier resourceVersion is too old: the next watch or
    /// exact list from one gets 410.
    pub fn compact(&self) {
        self.inner.state().compact();
    }

    /// Changes the history window (see [`Config::history_window`]).
    pub fn set_history_window(&self, n: usize) {
        self.inner.state().set_history_limit(n);
    }

    /// Sends a BOOKMARK now to every watch that asked for bookmarks.
    pub fn send_bookmarks(&self) {
        self.inner.state().bookmark(None);
    }

    /// Open watches, all or on one resource (`("", "services")`).
    pub fn watch_count(&self, group_resource: Option<(&str, &str)>) -> usize {
        let gr = group_resource.map(|(g, r)| (g.to_string(), r.to_string()));
        self.inner.state().watch_count(gr.as_ref())
    }

    /// Every logged request, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.hooks().log.iter().cloned().collect()
    }

    /// The log, emptied.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        self.inner.hooks().log.drain(..).collect()
    }

    pub fn clear_requests(&self) {
        self.inner.hooks().log.clear();
    }

    // ---- the store, directly ----

    /// Serves another resource type.
    pub fn register(&self, t: ResourceType) {
        self.inner.state().registry.add(t);
    }

    /// Stores an object as given, for seeding (any status kept, the namespace created if
    /// needed, a CRD's resource served). Returns it as stored.
    pub fn insert(&self, obj: Value) -> Result<Value, ApiError> {
        ops::insert(&mut self.inner.state(), obj)
    }

    /// Deletes an object at once, as if it had no finalizers (watches see DELETED).
    pub fn remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        ops::remove(&mut self.inner.state(), api_version, kind, namespace, name)
    }

    /// An object by apiVersion, kind, namespace ("" when cluster-scoped) and name.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let state = self.inner.state();
        ops::objects(&state, api_version, kind, Some(namespace))
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
    }

    /// Every object of a kind, ordered by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        ops::objects(&self.inner.state(), api_version, kind, None)
    }

    /// An object as a typed kube resource (`server.get::<Service>("default", "web")`).
    pub fn get<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
    {
        let o = self.object(&K::api_version(&()), &K::kind(&()), namespace, name)?;
        serde_json::from_value(o).ok()
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.state().resource_version()
    }

    /// Objects per resource, for a summary.
    pub fn census(&self) -> std::collections::BTreeMap<String, usize> {
        ops::census(&self.inner.state())
    }

    // ---- serving ----

    async fn handle(
        &self,
        parts: ::http::request::Parts,
        body: Bytes,
    ) -> Result<::http::Response<Body>, BoxError> {
        let uri_path = parts.uri.path().to_string();
        let query = Query::parse(parts.uri.query());
        let route = path::route(&uri_path);
        if let Route::Admin(what) = &route {
            return Ok(http::admin(self, &parts.method, what, &query, &body));
        }
        let header = |h: ::http::header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (verb, target) = classify(&parts.method, &route, &query);
        let mut rec = RecordedRequest {
            seq: 0,
            method: parts.method.to_string(),
            path: uri_path,
            query: query.pairs(),
            content_type: header(::http::header::CONTENT_TYPE),
            accept: header(::http::header::ACCEPT),
            user_agent: header(::http::header::USER_AGENT),
            field_manager: query.value("fieldManager").map(str::to_string),
            verb,
            target: target.clone(),
            body: if body.is_empty() {
                None
            } else {
                patch::parse_body(&body).ok()
            },
            status: 0,
            outcome: Outcome::Served,
        };

        let outage = self.inner.hooks().outage();
        if let Some(o) = outage {
            match o.mode {
                OutageMode::Refuse => {
                    rec.outcome = Outcome::Refused;
                    self.inner.hooks().record(rec);
                    return Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "test API server outage: connection refused",
                    )));
                }
                OutageMode::Unavailable => {
                    let mut e = ApiError::new(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    );
                    e.retry_after = Some(1);
                    rec.outcome = Outcome::Injected;
                    return Ok(self.finish(rec, error_response(&e)));
                }
                OutageMode::Hang => self.wait_out_outage().await,
            }
        }

        // The guard must be gone before `finish` takes the lock again.
        let fault = self.inner.hooks().take_fault(verb, target.as_ref());
        if let Some(f) = fault {
            match f {
                FaultResponse::Reset => {
                    rec.outcome = Outcome::Refused;
                    self.inner.hooks().record(rec);
                    return Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "test API server: injected connection reset",
                    )));
                }
                FaultResponse::Status {
                    code,
                    reason,
                    message,
                    retry_after,
                } => {
                    let mut e = ApiError::new(code, &reason, message);
                    if let Some(t) = &target {
                        let mut d = json!({"kind": t.resource});
                        if let Some(n) = &t.name {
                            d["name"] = json!(n);
                        }
                        if !t.group.is_empty() {
                            d["group"] = json!(t.group);
                        }
                        e.details = Some(d);
                    }
                    e.retry_after = retry_after;
                    rec.outcome = Outcome::Injected;
                    return Ok(self.finish(rec, error_response(&e)));
                }
            }
        }

        let accept = rec.accept.clone().unwrap_or_default();
        let is_resource = matches!(route, Route::Resource(_));
        if is_resource
            && !accept.is_empty()
            && !["json", "*/*", "yaml"].iter().any(|a| accept.contains(a))
        {
            return Ok(self.finish(rec, error_response(&ApiError::not_acceptable(&accept))));
        }
        // kubectl's `create namespace|configmap|secret` send protobuf: read those as JSON.
        let mut body = body;
        let mut content_type = rec.content_type.clone().unwrap_or_default();
        let writes = parts.method == ::http::Method::POST || parts.method == ::http::Method::PUT;
        if is_resource && writes && content_type.starts_with(protobuf::CONTENT_TYPE) {
            match protobuf::decode(&body) {
                Ok(v) => {
                    body = Bytes::from(v.to_string().into_bytes());
                    rec.body = Some(v);
                    content_type = "application/json".to_string();
                }
                Err(e) => return Ok(self.finish(rec, error_response(&e))),
            }
        }
        let response = self.route(&parts, route, &query, &body, &content_type, &rec);
        Ok(self.finish(rec, response))
    }

    fn finish(
        &self,
        mut rec: RecordedRequest,
        response: ::http::Response<Body>,
    ) -> ::http::Response<Body> {
        rec.status = response.status().as_u16();
        tracing::debug!(method = %rec.method, path = %rec.path, status = rec.status, outcome = ?rec.outcome, "test API server request");
        self.inner.hooks().record(rec);
        response
    }

    async fn wait_out_outage(&self) {
        loop {
            let o = self.inner.hooks().outage();
            let Some(o) = o else { return };
            if o.mode != OutageMode::Hang {
                return;
            }
            let step = hooks::remaining(&o)
                .unwrap_or(Duration::from_millis(20))
                .min(Duration::from_millis(20));
            tokio::time::sleep(step).await;
        }
    }

    fn route(
        &self,
        parts: &::http::request::Parts,
        route: Route,
        query: &Query,
        body: &[u8],
        content_type: &str,
        rec: &RecordedRequest,
    ) -> ::http::Response<Body> {
        let (major, minor) = self.inner.config.version;
        let doc = |v: Option<Value>| match v {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::path_not_found()),
        };
        match route {
            Route::Version => json_response(
                200,
                &json!({
                    "major": major.to_string(),
                    "minor": minor.to_string(),
                    "gitVersion": format!("v{major}.{minor}.0"),
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2025-01-01T00:00:00Z",
                    "goVersion": "none (lbspeaker test-apiserver)",
                    "compiler": "rustc",
                    "platform": "linux/amd64",
                }),
            ),
            Route::Health => text_response(200, "ok"),
            Route::CoreVersions => doc(Some(self.inner.state().registry.core_versions())),
            Route::Groups => doc(Some(self.inner.state().registry.group_list())),
            Route::Group(g) => doc(self.inner.state().registry.group(&g)),
            Route::Resources { group, version } => {
                doc(self.inner.state().registry.resource_list(&group, &version))
            }
            Route::OpenApiV2 => openapi::v2(),
            Route::OpenApiV3Index => doc(Some(openapi::v3_index(&self.inner.state().registry))),
            Route::OpenApiV3 { group, version } => doc(openapi::v3_group(
                &self.inner.state().registry,
                &group,
                &version,
            )),
            Route::Resource(p) => {
                let manager = query
                    .value("fieldManager")
                    .map(str::to_string)
                    .or_else(|| rec.user_agent.as_deref().map(ops::manager_from_user_agent))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "unknown".to_string());
                let req = ops::Request {
                    method: &parts.method,
                    path: &p,
                    query,
                    content_type,
                    accept: rec.accept.as_deref().unwrap_or(""),
                    body,
                    manager: &manager,
                };
                let reply = ops::dispatch(&mut self.inner.state(), &req);
                match reply {
                    Ok(ops::Reply::Json(code, v)) => json_response(code, &v),
                    Ok(ops::Reply::Watch(setup)) => {
                        let kind = self
                            .inner
                            .state()
                            .registry
                            .get(&p.group, &p.plural)
                            .map(|t| t.kind.clone())
                            .unwrap_or_default();
                        let s = watch::stream(self.inner.clone(), setup, kind);
                        let body = StreamBody::new(s);
                        let mut r = ::http::Response::new(UnsyncBoxBody::new(body));
                        r.headers_mut().insert(
                            ::http::header::CONTENT_TYPE,
                            ::http::HeaderValue::from_static("application/json"),
                        );
                        r
                    }
                    Err(e) => error_response(&e),
                }
            }
            Route::Admin(_) | Route::NotFound => error_response(&ApiError::path_not_found()),
        }
    }
}

/// The verb and resource of a request, for faults and the log.
fn classify(method: &::http::Method, route: &Route, q: &Query) -> (Option<Verb>, Option<Target>) {
    let Route::Resource(p) = route else {
        return (None, None);
    };
    use ::http::Method as M;
    let verb = match (method, p.name.is_some()) {
        (&M::GET, _) if q.flag("watch") => Verb::Watch,
        (&M::GET, false) => Verb::List,
        (&M::GET, true) => Verb::Get,
        (&M::POST, _) => Verb::Create,
        (&M::PUT, _) => Verb::Update,
        (&M::PATCH, _) => Verb::Patch,
        (&M::DELETE, true) => Verb::Delete,
        (&M::DELETE, false) => Verb::DeleteCollection,
        _ => return (None, None),
    };
    let t = Target {
        group: p.group.clone(),
        version: p.version.clone(),
        resource: p.plural.clone(),
        subresource: p.subresource.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
    };
    (Some(verb), Some(t))
}

fn full(bytes: Vec<u8>) -> Body {
    UnsyncBoxBody::new(Full::new(Bytes::from(bytes)).map_err(|e: Infallible| match e {}))
}

fn json_response(code: u16, v: &Value) -> ::http::Response<Body> {
    let mut r = ::http::Response::new(full(v.to_string().into_bytes()));
    *r.status_mut() =
        ::http::StatusCode::from_u16(code).unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text_response(code: u16, text: &str) -> ::http::Response<Body> {
    let mut r = ::http::Response::new(full(text.as_bytes().to_vec()));
    *r.status_mut() =
        ::http::StatusCode::from_u16(code).unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("text/plain"),
    );
    r
}

fn error_response(e: &ApiError) -> ::http::Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = ::http::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(::http::header::RETRY_AFTER, v);
    }
    r
}

/// [`ApiServer`] as a `tower::Service`: `kube::Client::new(server.service(), "default")`.
#[derive(Clone, Debug)]
pub struct ApiService {
    server: ApiServer,
}

impl<B> tower::Service<::http::Request<B>> for ApiService
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = ::http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ::http::Request<B>) -> Self::Future {
        let server = self.server.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            server.handle(parts, body).await
        })
    }
}
