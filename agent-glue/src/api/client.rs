//! Reading the local API from the CLI: HTTP/1.1 over the daemon's Unix socket.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Why the CLI could not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("cannot reach lbspeaker at {path}: {error} (is the daemon running? is --api right?)")]
    Connect {
        /// The socket path.
        path: String,
        /// Why (shown in the message, not chained, so it is said once).
        error: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to lbspeaker at {path}: {message}")]
    Http {
        /// The socket path.
        path: String,
        /// What failed.
        message: String,
    },
    /// The daemon answered with an error.
    #[error("lbspeaker: {0}")]
    Api(ApiError),
}

/// A client of one daemon's socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Client {
        Client {
            socket: socket.as_ref().to_owned(),
        }
    }

    /// GETs `path` and returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.get(path).await
    }

    /// GETs `path` and decodes the JSON body.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let shown = self.socket.display().to_string();
        let http = |message: String| ClientError::Http {
            path: shown.clone(),
            message,
        };
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|error| ClientError::Connect {
                path: shown.clone(),
                error,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "lbspeaker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        drop(sender);
        let _ = conn.await;
        if !status.is_success() {
            let err = serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
            return Err(ClientError::Api(err));
        }
        serde_json::from_slice(&body).map_err(|e| http(format!("unexpected answer: {e}")))
    }
}
