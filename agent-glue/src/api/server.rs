//! Serving a [`Backend`] on a Unix socket.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::UnixListener;

use super::{Afi, ApiError, Backend, FamilyName, RouteTable, Safi};

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The socket could not be created.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Another daemon answers on that socket.
    #[error("{0} is in use by a running lbspeaker; stop it or pass another --api path")]
    InUse(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

/// The routes of the API, for a backend.
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .route(
            "/v1/bgp/peers",
            get(|State(b): State<Arc<B>>| async move { Json(b.bgp_peers().await) }),
        )
        .route(
            "/v1/bgp/routes/{table}/{afi}/{safi}",
            get(
                |State(b): State<Arc<B>>,
                 UrlPath((table, afi, safi)): UrlPath<(RouteTable, Afi, Safi)>| async move {
                    b.bgp_routes(table, FamilyName { afi, safi })
                        .await
                        .map(Json)
                },
            ),
        )
        .route(
            "/v1/bgp/route-policies",
            get(|State(b): State<Arc<B>>| async move { Json(b.bgp_route_policies().await) }),
        )
        .route(
            "/v1/ipam/pools",
            get(|State(b): State<Arc<B>>| async move { b.ipam_pools().await.map(Json) }),
        )
        .route(
            "/v1/ipam/services",
            get(|State(b): State<Arc<B>>| async move { b.ipam_services().await.map(Json) }),
        )
        .route(
            "/v1/l2/leases",
            get(|State(b): State<Arc<B>>| async move { b.l2_leases().await.map(Json) }),
        )
        .route(
            "/v1/lb/list",
            get(|State(b): State<Arc<B>>| async move { b.lb_list().await.map(Json) }),
        )
        .route(
            "/v1/bfd/peers",
            get(|State(b): State<Arc<B>>| async move { Json(b.bfd().await) }),
        )
        .route(
            "/v1/fib",
            get(|State(b): State<Arc<B>>| async move { Json(b.fib().await) }),
        )
        .route(
            "/v1/status",
            get(|State(b): State<Arc<B>>| async move { Json(b.status().await) }),
        )
        .with_state(backend)
}

/// Binds the socket: creates its directory, replaces a stale socket (one nobody answers on),
/// refuses a live one, and restricts it to root (mode 0600) or, with `group`, to its owner
/// and that group (mode 0660).
pub async fn bind(
    path: &Path,
    group: Option<nix::unistd::Gid>,
) -> Result<UnixListener, ServeError> {
    let l = bind_std(path, group)?;
    let shown = path.display().to_string();
    l.set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(l))
        .map_err(|source| ServeError::Bind {
            path: shown,
            source,
        })
}

/// [`bind`] without a runtime: for a daemon that binds before it drops its privileges (the
/// group needs CAP_CHOWN) and before its runtime exists.
pub fn bind_std(
    path: &Path,
    group: Option<nix::unistd::Gid>,
) -> Result<std::os::unix::net::UnixListener, ServeError> {
    let shown = path.display().to_string();
    let bind_err = |source| ServeError::Bind {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::InUse(shown));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    if let Some(g) = group {
        nix::unistd::chown(path, None, Some(g)).map_err(|e| bind_err(e.into()))?;
    }
    Ok(listener)
}

/// Serves the API until `shutdown` completes.
pub async fn serve<B: Backend>(
    listener: UnixListener,
    backend: Arc<B>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(backend))
        .with_graceful_shutdown(shutdown)
        .await
}
