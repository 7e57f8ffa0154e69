//! The kube client each role uses: in-cluster configuration (the pod's service account) or a
//! kubeconfig file, our `User-Agent`, and a [`RateLimit`] in front of everything.

use std::path::PathBuf;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Role;
use super::ratelimit::{RateLimit, RateLimitLayer};

/// How to reach the API server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// A kubeconfig file; `None`: the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Requests per second before scaling (client-go's `QPS`).
    pub qps: f64,
    /// Requests at once (client-go's `Burst`).
    pub burst: u32,
    /// Extra requests per second per service (see [`RateLimit::scale_to`]).
    pub per_service_qps: f64,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Not in a pod (no service account), and no `--kubeconfig`.
    #[error("no in-cluster configuration ({0}); outside a cluster, give --kubeconfig FILE")]
    InCluster(String),
    /// The HTTP client could not be built (TLS settings).
    #[error("building the Kubernetes client: {0}")]
    Build(String),
}

/// Connects as `role` (instance `instance`: the node or the pod), with its rate limit.
pub async fn connect(
    role: Role,
    instance: &str,
    opts: &ClientOptions,
) -> Result<(kube::Client, RateLimit), ClientError> {
    let mut config = match &opts.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
        }
        None => kube::Config::incluster().map_err(|e| ClientError::InCluster(e.to_string()))?,
    };
    let ua = role.user_agent(instance);
    if let Ok(v) = http::HeaderValue::from_str(&ua) {
        config.headers.push((http::header::USER_AGENT, v));
    }
    let limit = RateLimit::new(opts.qps, opts.burst, opts.per_service_qps);
    let client = ClientBuilder::try_from(config)
        .map_err(|e| ClientError::Build(e.to_string()))?
        .with_layer(&RateLimitLayer::new(limit.clone(), None))
        .build();
    Ok((client, limit))
}

/// A client over any HTTP service (the test API server in process, a mock), with the same
/// user agent, rate limit and retry of 429/503/504 as [`connect`] gives a real one.
pub fn over<S, B>(
    service: S,
    default_namespace: &str,
    role: Role,
    instance: &str,
    limit: RateLimit,
) -> kube::Client
where
    S: tower::Service<
            http::Request<kube::client::Body>,
            Response = http::Response<B>,
            Error = tower::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = hyper::body::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    let retry = kube::client::retry::RetryPolicy::server_retry();
    let service = tower::ServiceBuilder::new()
        .layer(RateLimitLayer::new(limit, Some(&role.user_agent(instance))))
        .layer(tower::retry::RetryLayer::new(retry))
        .service(service);
    kube::Client::new(service, default_namespace)
}
