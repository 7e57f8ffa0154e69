//! Serving over plain HTTP on loopback, the kubeconfig that points kubectl at it, and the
//! hooks as HTTP endpoints under `/_test/` for tests that run clients as processes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::hooks::{Fault, OutageMode};
use super::path::Query;
use super::{ApiError, ApiServer, Body, error_response, json_response};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("the test API server listens on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("writing the kubeconfig {0}: {1}")]
    Kubeconfig(String, #[source] std::io::Error),
}

/// A server accepting connections on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ServeError> {
        std::fs::write(path, kubeconfig(&self.url()))
            .map_err(|e| ServeError::Kubeconfig(path.display().to_string(), e))
    }

    /// A kube client that talks to the server over TCP, as a process would.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let url: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| kube::Error::Service(e.to_string().into()))?;
        let config = kube::Config::new(url);
        kube::Client::try_from(config)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kubeconfig with one cluster, `test-apiserver`, at `url`, default namespace `default`.
pub fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test-apiserver\n  cluster:\n    server: {url}\n\
         contexts:\n- name: test-apiserver\n  context:\n    cluster: test-apiserver\n    user: test\n    namespace: default\n\
         current-context: test-apiserver\nusers:\n- name: test\n  user: {{}}\n"
    )
}

impl ApiServer {
    /// Binds `addr` (loopback only; port 0 picks one) and serves in a background task.
    pub async fn start(&self, addr: SocketAddr) -> Result<Running, ServeError> {
        if !addr.ip().is_loopback() {
            return Err(ServeError::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Bind(addr, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Bind(addr, e))?;
        let server = self.clone();
        let task = tokio::spawn(async move { server.serve(listener).await });
        Ok(Running { addr, task })
    }

    /// Serves connections from `listener` until the task is dropped. During a `Refuse`
    /// outage new connections are closed at once.
    pub async fn serve(&self, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if self
                .inner
                .hooks()
                .outage()
                .is_some_and(|o| o.mode == OutageMode::Refuse)
            {
                drop(stream);
                continue;
            }
            let svc = TowerToHyperService::new(self.service());
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
            });
        }
    }
}

/// `/_test/...`: the hooks over HTTP (not logged, served during outages).
pub(super) fn admin(
    server: &ApiServer,
    method: &http::Method,
    what: &str,
    q: &Query,
    body: &[u8],
) -> http::Response<Body> {
    match admin_inner(server, method, what, q, body) {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

fn admin_inner(
    server: &ApiServer,
    method: &http::Method,
    what: &str,
    q: &Query,
    body: &[u8],
) -> Result<Value, ApiError> {
    use http::Method as M;
    let parse = |b: &[u8]| -> Result<Value, ApiError> { super::patch::parse_body(b) };
    match (method, what) {
        (&M::GET, "requests") => Ok(json!(server.requests())),
        (&M::DELETE, "requests") => {
            server.clear_requests();
            Ok(json!({}))
        }
        (&M::POST, "faults") => {
            let f: Fault = serde_json::from_value(parse(body)?)
                .map_err(|e| ApiError::bad_request(format!("not a fault: {e}")))?;
            server.inject(f);
            Ok(json!({"pending": server.pending_faults()}))
        }
        (&M::DELETE, "faults") => {
            server.clear_faults();
            Ok(json!({}))
        }
        (&M::POST, "outage") => {
            let mode = match q.get("mode").unwrap_or("refuse") {
                "refuse" => OutageMode::Refuse,
                "hang" => OutageMode::Hang,
                "unavailable" => OutageMode::Unavailable,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown outage mode {other}"
                    )));
                }
            };
            match q.value("seconds").map(str::parse::<f64>) {
                Some(Ok(s)) if s.is_finite() && s > 0.0 => {
                    server.outage_for(mode, Duration::from_secs_f64(s))
                }
                Some(_) => return Err(ApiError::bad_request("seconds must be a positive number")),
                None => server.outage(mode),
            }
            Ok(json!({}))
        }
        (&M::DELETE, "outage") => {
            server.end_outage();
            Ok(json!({}))
        }
        (&M::POST, "drop-watches") => Ok(json!({"dropped": server.drop_watches()})),
        (&M::POST, "expire-watches") => Ok(json!({"expired": server.expire_watches()})),
        (&M::POST, "compact") => {
            server.compact();
            Ok(json!({"resourceVersion": server.resource_version().to_string()}))
        }
        (&M::POST, "bookmarks") => {
            server.send_bookmarks();
            Ok(json!({}))
        }
        (&M::GET, "watches") => Ok(json!({"count": server.watch_count(None)})),
        (&M::POST, "objects") => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("objects must be UTF-8"))?;
            let mut stored = Vec::new();
            for obj in crds_first(documents(text)?) {
                stored.push(server.insert(obj)?);
            }
            Ok(json!({"items": stored}))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// CustomResourceDefinitions before everything else, so the objects they declare can be
/// stored.
pub fn crds_first(docs: Vec<Value>) -> Vec<Value> {
    let (crds, rest): (Vec<Value>, Vec<Value>) = docs
        .into_iter()
        .partition(|d| d["kind"] == "CustomResourceDefinition");
    crds.into_iter().chain(rest).collect()
}

/// Objects in a JSON value, a `List`, or a multi-document YAML stream.
pub fn documents(text: &str) -> Result<Vec<Value>, ApiError> {
    let docs: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![v],
        Err(_) => serde_saphyr::from_multiple::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("not JSON or YAML: {e}")))?,
    };
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Null => {}
            Value::Object(ref m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && m.get("items").is_some_and(Value::is_array) =>
            {
                out.extend(
                    m.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            other => out.push(other),
        }
    }
    Ok(out)
}
